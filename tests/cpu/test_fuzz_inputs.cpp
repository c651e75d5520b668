// A fixed-seed fuzz loop over the readers of untrusted files (issue 13): the config reader, the
// tokenizer.json loader, the shard header reader and the safetensors reader. Each valid seed
// input is mutated (bit flips, truncation, inserted bytes and JSON tokens, duplicated chunks,
// deep nesting, interesting integers in binary headers); every mutant must load or throw
// moda::Error — never crash, never another exception type. Bounded by an iteration count and a
// wall-clock budget; CI also runs it under ASan/UBSan, which turns memory errors into failures.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "distributed/train_config.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using namespace moda;

using moda::testing::error_of;
using moda::testing::TempDir;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}
  size_t below(size_t n) { return n ? std::uniform_int_distribution<size_t>(0, n - 1)(rng_) : 0; }

  // Structure-aware: parses `text` and replaces one value (a leaf or a whole object/list) by a
  // value of another type or an extreme one, so field readers (not only the parser) are hit.
  std::string mutate_json(const std::string& text) {
    static const nlohmann::json values[] = {2.7,
                                            -1,
                                            0,
                                            1e300,
                                            -1e300,
                                            "x",
                                            "",
                                            nullptr,
                                            true,
                                            false,
                                            nlohmann::json::array(),
                                            nlohmann::json::object(),
                                            nlohmann::json::array({1, "a"}),
                                            18446744073709551615ull,
                                            -9223372036854775807LL - 1,
                                            4294967296LL,
                                            1600000000};
    nlohmann::json j = nlohmann::json::parse(text);
    // A random walk from the root (stopping early a third of the time) weights the few
    // structural fields as much as the thousands of vocabulary entries.
    nlohmann::json* node = &j;
    while ((node->is_object() || node->is_array()) && !node->empty() && (node == &j || below(3))) {
      auto it = node->begin();
      std::advance(it, below(node->size()));
      node = &*it;
    }
    *node = values[below(std::size(values))];
    return j.dump(1);
  }

  // One mutation most of the time (several break JSON at once), up to four; `binary_header` > 0
  // also plants integers in the first bytes.
  std::string mutate(std::string s, size_t binary_header) {
    static const char* tokens[] = {"[",          "{",
                                   "}",          "]",
                                   "\"",         ",",
                                   ":",          "-1",
                                   "2.7",        "0",
                                   "1e999",      "-0",
                                   "null",       "true",
                                   "\\u0000",    "\\",
                                   "\xff\xfe",   "18446744073709551615",
                                   "4294967295", "99999999999999999999"};
    const int n = below(4) ? 1 : 2 + int(below(3));
    for (int k = 0; k < n; ++k) {
      switch (below(binary_header ? 8 : 7)) {
        case 0:  // flip bits
          for (int i = 0, m = 1 + int(below(8)); i < m && !s.empty(); ++i) s[below(s.size())] ^= char(1 << below(8));
          break;
        case 1:  // truncate
          s.resize(below(s.size() + 1));
          break;
        case 2:  // insert random bytes
          s.insert(below(s.size() + 1), std::string(1 + below(8), char(below(256))));
          break;
        case 3:  // insert a JSON token
          s.insert(below(s.size() + 1), tokens[below(std::size(tokens))]);
          break;
        case 4: {  // duplicate a chunk
          if (s.empty()) break;
          size_t a = below(s.size()), len = 1 + below(std::min<size_t>(64, s.size() - a));
          s.insert(below(s.size() + 1), s.substr(a, len));
          break;
        }
        case 5: {  // delete a chunk
          if (s.empty()) break;
          size_t a = below(s.size());
          s.erase(a, 1 + below(std::min<size_t>(64, s.size() - a)));
          break;
        }
        case 6: {  // deep nesting at a random point (rarely: it is always refused)
          if (below(4)) break;
          size_t depth = below(2) ? 70 + below(100) : 10000 + below(90000);
          s.insert(below(s.size() + 1), std::string(depth, below(2) ? '[' : '{'));
          break;
        }
        case 7: {  // an interesting 32/64-bit integer in the binary header
          static const uint64_t values[] = {
              0,    1,        2, 7, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 20240520, uint64_t(1) << 40, ~uint64_t(0),
              1024, 100000000};
          uint64_t v = values[below(std::size(values))];
          size_t at = below(binary_header) & ~size_t(3);
          if (at + 8 <= s.size()) std::memcpy(s.data() + at, &v, below(2) ? 4 : 8);
          break;
        }
      }
    }
    return s;
  }

 private:
  std::mt19937_64 rng_;
};

struct Outcome {
  int loaded = 0, refused = 0;
};

// Runs `load` on `iterations` mutants of `seed`; any exception other than moda::Error fails the
// test with the mutant saved next to the temp folder for replay.
Outcome fuzz(const std::string& what, const std::string& seed, bool json, size_t binary_header, int iterations,
             const std::string& path, const std::function<void()>& load) {
  Mutator m(0x6d6f6461 + std::hash<std::string>{}(what));
  Outcome out;
  // MODA_FUZZ_SECONDS=N runs longer (no iteration cap) for a deeper search than CI's default.
  const char* env = std::getenv("MODA_FUZZ_SECONDS");
  const int seconds = env ? std::max(1, std::atoi(env)) : 2;
  if (env) iterations = std::numeric_limits<int>::max();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (int i = 0; i < iterations && std::chrono::steady_clock::now() < deadline; ++i) {
    const std::string input = json && m.below(2) ? m.mutate_json(seed) : m.mutate(seed, binary_header);
    write_bytes(path, input);
    try {
      load();
      ++out.loaded;
    } catch (const moda::Error&) {
      ++out.refused;
    } catch (const std::exception& e) {
      const std::string keep = (fs::temp_directory_path() / ("moda_fuzz_failure_" + what)).string();
      write_bytes(keep, input);
      FAIL(what << " mutant " << i << " threw a non-moda exception: " << e.what() << " (input saved to " << keep
                << ")");
    }
  }
  UNSCOPED_INFO(what << ": " << out.loaded << " loaded, " << out.refused << " refused");
  CHECK(out.loaded + out.refused > 0);
  return out;
}

}  // namespace

TEST_CASE("fuzz: the config reader loads or throws moda::Error on mutated configs", "[cpu][fuzz]") {
  TempDir dir("config");
  std::vector<uint32_t> toks(3000);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = uint32_t(i * 13 % 317);
  data::write_shard(dir / "f_train_000000.bin", toks, 1);
  data::write_shard(dir / "f_val_000000.bin", toks, 1);
  nlohmann::json config = {
      {"model",
       {{"vocab_size", 320}, {"d_model", 32}, {"n_layers", 2}, {"n_heads", 4}, {"n_kv_heads", 2}, {"ffn_hidden", 64}}},
      {"data", {{"train", dir / "f_train_*.bin"}, {"val", {{"v", dir / "f_val_*.bin"}}}, {"seq_len", 32}}},
      {"optim", {{"lr", 1e-2}, {"warmup_steps", 5}}},
      {"train", {{"steps", 10}, {"global_batch", 8}, {"micro_batch", 4}, {"device", "cpu"}}}};
  const std::string path = dir / "config.json";
  write_bytes(path, config.dump(2));
  REQUIRE_NOTHROW(load_train_config(path, {}));
  auto o = fuzz("config", config.dump(2), true, 0, 3000, path, [&] { load_train_config(path, {"train.log_every=2"}); });
  CHECK(o.refused > 0);
}

TEST_CASE("fuzz: the tokenizer.json loader loads or throws moda::Error on mutated files", "[cpu][fuzz]") {
  TempDir dir("tokenizer");
  const std::string seed = slurp(MODA_SOURCE_DIR "/tests/fixtures/tokenizer/hf_tokenizer.json");
  REQUIRE(seed.size() > 1000);
  const std::string path = dir / "tokenizer.json";
  auto o = fuzz("tokenizer", seed, true, 0, 400, path, [&] {
    data::Tokenizer t = data::Tokenizer::load(path);
    // A tokenizer that loads must also work: encode/decode real text.
    auto ids = t.encode("This program is free software; you can redistribute it.");
    (void)t.decode(ids);
  });
  CHECK(o.refused > 0);
}

TEST_CASE("fuzz: the shard reader loads or throws moda::Error on mutated shards", "[cpu][fuzz]") {
  TempDir dir("shard");
  std::vector<uint32_t> toks(200);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = uint32_t(i * 31 % 70000);
  const std::string seed_path = dir / "seed.bin", path = dir / "mutant.bin";
  data::write_shard(seed_path, toks, 2);
  const std::string seed = slurp(seed_path);
  auto o = fuzz("shard", seed, false, 16, 3000, path, [&] {
    data::ShardView v(path);
    std::vector<int64_t> out(v.size());
    v.read(0, v.size(), out.data(), 70000);
    v.validate(70000);
  });
  CHECK(o.refused > 0);
}

TEST_CASE("fuzz: the safetensors reader loads or throws moda::Error on mutated files", "[cpu][fuzz]") {
  TempDir dir("safetensors");
  Tensor a = Tensor::empty({3, 4}, DType::F32, Device::cpu());
  Tensor b = Tensor::empty({5}, DType::I64, Device::cpu());
  std::memset(a.data_ptr(), 0, a.nbytes());
  std::memset(b.data_ptr(), 0, b.nbytes());
  const std::string seed_path = dir / "seed.safetensors", path = dir / "mutant.safetensors";
  save_safetensors(seed_path, {{"a", a}, {"b", b}}, {{"format", "moda"}, {"step", "3"}});
  const std::string seed = slurp(seed_path);
  auto o = fuzz("safetensors", seed, false, 8, 3000, path, [&] { load_safetensors(path); });
  CHECK(o.refused > 0);
}
