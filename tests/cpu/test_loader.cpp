// Loaders: train windows are real slices, deterministic, disjoint across ranks, cover an epoch,
// and resume bit-exactly from saved state; eval predicts every token exactly once.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "data/loader.h"
#include "data/shard.h"

using namespace moda::data;
namespace fs = std::filesystem;

namespace {

struct Shards {
  fs::path dir;
  std::vector<std::string> paths;
  std::vector<std::vector<uint32_t>> tokens;
  // Token value = 1000 * shard + position (mod 60000): a window's origin is readable from it.
  explicit Shards(std::vector<size_t> sizes)
      : dir(fs::temp_directory_path() / ("moda_loader_" + std::to_string(::getpid()))) {
    fs::create_directories(dir);
    for (size_t k = 0; k < sizes.size(); ++k) {
      std::vector<uint32_t> t(sizes[k]);
      for (size_t i = 0; i < t.size(); ++i) t[i] = uint32_t((k * 10007 + i) % 60000);
      paths.push_back(shard_name((dir / "d").string(), "train", k));
      write_shard(paths.back(), t, 1);
      tokens.push_back(std::move(t));
    }
  }
  ~Shards() { fs::remove_all(dir); }
  LoaderOptions options(int64_t B, int64_t T, int rank = 0, int world = 1, uint64_t seed = 1) const {
    LoaderOptions o;
    o.shards = paths, o.batch_size = B, o.seq_len = T, o.rank = rank, o.world_size = world, o.seed = seed;
    o.vocab_size = 60000;
    return o;
  }
  // Finds (shard, start) of a window by matching its tokens; -1 if it is no slice.
  std::pair<int, int64_t> locate(const int64_t* in, const int64_t* tg, int64_t T) const {
    for (size_t k = 0; k < tokens.size(); ++k)
      for (size_t s = 0; s + T < tokens[k].size(); ++s) {
        if (tokens[k][s] != uint32_t(in[0])) continue;
        bool ok = true;
        for (int64_t i = 0; i < T && ok; ++i)
          ok = tokens[k][s + i] == uint32_t(in[i]) && tokens[k][s + i + 1] == uint32_t(tg[i]);
        if (ok) return {int(k), int64_t(s)};
      }
    return {-1, -1};
  }
};

}  // namespace

TEST_CASE("data: train loader windows are shifted slices, one epoch covers each window once", "[cpu][data]") {
  Shards sh({1000, 457, 2311});
  const int64_t B = 3, T = 37;
  TrainLoader loader(sh.options(B, T));
  const int64_t per_epoch = loader.windows_per_rank(0);
  std::set<std::pair<int, int64_t>> seen;
  std::vector<int64_t> in(B * T), tg(B * T);
  for (int64_t taken = 0; taken < per_epoch; taken += B) {
    loader.next(in.data(), tg.data());
    for (int64_t b = 0; b < B && taken + b < per_epoch; ++b) {
      auto where = sh.locate(&in[b * T], &tg[b * T], T);
      REQUIRE(where.first >= 0);  // a real slice of one shard, targets = inputs shifted by one
      CHECK(seen.insert(where).second);
    }
  }
  CHECK(int64_t(seen.size()) == per_epoch);
  // Windows of one epoch share one offset and never overlap.
  std::set<int64_t> offsets;
  for (auto& [k, s] : seen) offsets.insert(s % T);
  CHECK(offsets.size() == 1);
  CHECK(loader.epoch() == (per_epoch % B == 0 ? 0 : 1));
}

TEST_CASE("data: train loader is deterministic per seed and disjoint across ranks", "[cpu][data]") {
  Shards sh({5000, 3001});
  const int64_t B = 4, T = 16, world = 3;
  auto batches = [&](int rank, uint64_t seed, int n) {
    TrainLoader l(sh.options(B, T, rank, world, seed));
    std::vector<int32_t> in(B * T), tg(B * T), all;
    for (int i = 0; i < n; ++i) {
      l.next(in.data(), tg.data());
      all.insert(all.end(), in.begin(), in.end());
    }
    return all;
  };
  CHECK(batches(0, 1, 10) == batches(0, 1, 10));
  CHECK(batches(0, 1, 10) != batches(0, 2, 10));
  // Within an epoch the ranks' windows (identified by their first token and shard) are disjoint.
  TrainLoader probe(sh.options(B, T, 0, world));
  const int n = int(probe.windows_per_rank(0) / B);
  std::set<std::vector<int32_t>> windows;
  size_t total = 0;
  for (int r = 0; r < world; ++r) {
    auto all = batches(r, 1, n);
    for (size_t w = 0; w < all.size(); w += T, ++total)
      windows.insert(std::vector<int32_t>(all.begin() + w, all.begin() + w + T));
  }
  CHECK(windows.size() == total);
}

TEST_CASE("data: train loader resumes bit-exactly from its JSON state", "[cpu][data]") {
  Shards sh({700, 1300});
  const int64_t B = 5, T = 24;
  TrainLoader a(sh.options(B, T, 1, 2, 99));
  std::vector<int64_t> in(B * T), tg(B * T), in2(B * T), tg2(B * T);
  // Run past several epochs (each rank has ~40 windows per epoch), saving mid-way.
  for (int i = 0; i < 23; ++i) a.next(in.data(), tg.data());
  const std::string saved = a.state().dump();
  TrainLoader b(sh.options(B, T, 1, 2, /*seed ignored: the state's wins*/ 5));
  b.load_state(nlohmann::json::parse(saved));
  for (int i = 0; i < 40; ++i) {
    a.next(in.data(), tg.data());
    b.next(in2.data(), tg2.data());
    REQUIRE(in == in2);
    REQUIRE(tg == tg2);
  }
  CHECK(a.epoch() >= 2);
  CHECK(a.state() == b.state());

  TrainLoader other_t(sh.options(B, T + 1, 1, 2, 99));
  CHECK_THROWS_WITH(other_t.load_state(nlohmann::json::parse(saved)),
                    Catch::Contains("seq_len is 24 in the saved state but 25"));
  CHECK_THROWS_WITH(b.load_state(nlohmann::json{{"format", "moda.train_loader/1"}}), Catch::Contains("missing field"));
}

TEST_CASE("data: train loader state continues at another world size from the same global position",
          "[cpu][data][reshard]") {
  Shards sh({700, 1300});
  const int64_t T = 24;
  const uint64_t seed = 7;
  // Reference: one rank drawing one window at a time takes the epoch's permuted positions
  // 0, 1, 2, ... in order; a window is named by its first input token (unique in these shards).
  std::vector<int64_t> ref;
  {
    TrainLoader one(sh.options(1, T, 0, 1, seed));
    std::vector<int64_t> in(T), tg(T);
    for (int i = 0; i < 60; ++i) one.next(in.data(), tg.data()), ref.push_back(in[0]);
    REQUIRE(one.epoch() == 0);  // all in the first epoch (about 80 windows)
  }
  // Two ranks, batch 5, three batches each: positions [0, 30) are taken, cursor 15.
  nlohmann::json saved;
  for (int r = 0; r < 2; ++r) {
    TrainLoader l(sh.options(5, T, r, 2, seed));
    std::vector<int64_t> in(5 * T), tg(5 * T);
    for (int i = 0; i < 3; ++i) l.next(in.data(), tg.data());
    if (r == 0) saved = l.state();
  }
  REQUIRE(saved["cursor"] == 15);
  // The windows `world` ranks draw in `batches` batches of B after loading `saved`.
  auto continued = [&](int world, int64_t B, int batches, uint64_t* skipped) {
    std::multiset<int64_t> out;
    for (int r = 0; r < world; ++r) {
      TrainLoader l(sh.options(B, T, r, world, /*seed: the state's wins*/ 1));
      *skipped = l.load_state(saved);
      std::vector<int64_t> in(B * T), tg(B * T);
      for (int i = 0; i < batches; ++i) {
        l.next(in.data(), tg.data());
        for (int64_t b = 0; b < B; ++b) out.insert(in[b * T]);
      }
    }
    return out;
  };
  auto positions = [&](size_t lo, size_t hi) { return std::multiset<int64_t>(ref.begin() + lo, ref.begin() + hi); };
  uint64_t skipped = 99;
  // 30 is a multiple of 5 and of 3: exactly the positions [30, 50), whatever the batch size.
  CHECK(continued(5, 2, 2, &skipped) == positions(30, 50));
  CHECK(skipped == 0);
  CHECK(continued(3, 4, 1, &skipped) == positions(30, 42));
  CHECK(skipped == 0);
  CHECK(continued(1, 7, 2, &skipped) == positions(30, 44));
  // 30 is not a multiple of 4: positions 30 and 31 are skipped, the ranks go on from 32.
  CHECK(continued(4, 5, 1, &skipped) == positions(32, 52));
  CHECK(skipped == 2);
  // A cursor past the saved world's share of the epoch is refused, naming the world size.
  nlohmann::json bad = saved;
  bad["cursor"] = 1000;
  TrainLoader l(sh.options(1, T, 0, 3, seed));
  CHECK_THROWS_WITH(l.load_state(bad), Catch::Contains("at world size 2"));
}

TEST_CASE("data: eval loader predicts every token exactly once", "[cpu][data]") {
  Shards sh({1000, 1, 457, 65});
  const int64_t B = 3, T = 50, world = 2;
  std::map<std::pair<size_t, int64_t>, int> predicted;  // (shard, value) counts
  uint64_t valid_total = 0;
  int64_t batches = -1;
  for (int r = 0; r < world; ++r) {
    EvalLoader l(sh.options(B, T, r, world));
    if (batches < 0) batches = l.num_batches();
    CHECK(l.num_batches() == batches);  // every rank runs the same number of batches
    CHECK(l.num_targets() == 999 + 0 + 456 + 64);
    std::vector<int32_t> in(B * T), tg(B * T);
    int64_t valid, count = 0;
    while (l.next(in.data(), tg.data(), &valid)) {
      ++count;
      int64_t v = 0;
      for (int64_t i = 0; i < B * T; ++i) {
        if (tg[i] == kIgnoreIndex) {
          CHECK(in[i] == 0);
          continue;
        }
        ++v;
        ++predicted[{0, tg[i]}];
        if (i % T) CHECK(in[i] == tg[i - 1]);  // inputs are the targets shifted by one
      }
      CHECK(v == valid);
      valid_total += uint64_t(valid);
    }
    CHECK(count == batches);
  }
  CHECK(valid_total == 999 + 456 + 64);
  // Every token but each shard's first is a target once (token values are distinct here).
  std::map<std::pair<size_t, int64_t>, int> expected;
  for (size_t k = 0; k < sh.tokens.size(); ++k)
    for (size_t i = 1; i < sh.tokens[k].size(); ++i) ++expected[{0, sh.tokens[k][i]}];
  CHECK(predicted == expected);
}

TEST_CASE("data: eval loader state resumes, loaders check ids and sizes", "[cpu][data]") {
  Shards sh({400, 333});
  EvalLoader a(sh.options(2, 30));
  std::vector<int64_t> in(60), tg(60), in2(60), tg2(60);
  a.next(in.data(), tg.data());
  a.next(in.data(), tg.data());
  EvalLoader b(sh.options(2, 30));
  b.load_state(a.state());
  while (a.next(in.data(), tg.data())) {
    REQUIRE(b.next(in2.data(), tg2.data()));
    CHECK(in == in2);
    CHECK(tg == tg2);
  }
  CHECK_FALSE(b.next(in2.data(), tg2.data()));

  LoaderOptions small_vocab = sh.options(2, 30);
  small_vocab.vocab_size = 100;
  EvalLoader bad(small_vocab);
  // Shard 0 holds ids 0..399: the window reaching id 100 is refused.
  CHECK_THROWS_WITH(
      [&] {
        while (bad.next(in.data(), tg.data())) {
        }
      }(),
      Catch::Contains("token id 100 at index 100 (byte offset 1224) is not below the vocabulary size 100"));
  CHECK_THROWS_WITH(TrainLoader(sh.options(1, 500, 0, 2)), Catch::Contains("need at least one per rank"));
  LoaderOptions none = sh.options(1, 8);
  none.shards = {(sh.dir / "missing.bin").string()};
  CHECK_THROWS_WITH(EvalLoader(none), Catch::Contains("missing.bin"));
}
