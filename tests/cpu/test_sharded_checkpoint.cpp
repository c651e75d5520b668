// Sharded checkpoints (issue 11): the arithmetic of resharding, and checkpoints written at one
// world size read back at another bit for bit, in one process. Saving and resuming through
// mpirun at 1, 2 and 3 ranks: tests/cli/mpi_checkpoint.sh.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "distributed/checkpoint.h"
#include "distributed/shard_layout.h"
#include "distributed/sharded_checkpoint.h"
#include "distributed/sharded_optimizer.h"
#include "nn/language_model.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using namespace moda;
using moda::testing::error_of;
using moda::testing::TempDir;

TEST_CASE("reshard: owned ranges tile a group, saved pieces cover any range once at the right offsets",
          "[cpu][reshard]") {
  CHECK(shard_size(10, 3) == 4);
  CHECK(owned_range(10, 3, 0) == ElementRange{0, 4});
  CHECK(owned_range(10, 3, 2) == ElementRange{8, 10});  // the last rank's 2 elements of padding are not real
  CHECK(owned_range(2, 4, 3).size() == 0);              // a rank of padding only
  const auto p = saved_pieces(10, 3, {3, 9});
  REQUIRE(p.size() == 3);
  CHECK((p[0].rank == 0 && p[0].global == ElementRange{3, 4} && p[0].offset_in_shard == 3));
  CHECK((p[1].rank == 1 && p[1].global == ElementRange{4, 8} && p[1].offset_in_shard == 0));
  CHECK((p[2].rank == 2 && p[2].global == ElementRange{8, 9} && p[2].offset_in_shard == 0));
  CHECK(saved_pieces(10, 3, {5, 5}).empty());
  CHECK_THROWS_WITH(saved_pieces(10, 3, {4, 11}), Catch::Contains("outside a group of 10"));

  // Every (n, saved world, new world): element e of the group lives in saved rank e / S at offset
  // e % S, each new rank's range is covered once in order, and the new ranges tile [0, n).
  int64_t checked = 0;
  for (int64_t n : {0, 1, 2, 5, 7, 64, 1000, 1001})
    for (int saved = 1; saved <= 8; ++saved)
      for (int now = 1; now <= 8; ++now) {
        const int64_t s = shard_size(n, saved);
        int64_t tiled = 0;
        for (int r = 0; r < now; ++r) {
          const ElementRange want = owned_range(n, now, r);
          REQUIRE(want.lo == std::min(tiled, n));
          tiled = std::max(tiled, want.hi);
          int64_t next = want.lo;
          for (const auto& piece : saved_pieces(n, saved, want)) {
            REQUIRE(piece.global.lo == next);
            REQUIRE(piece.rank == piece.global.lo / s);
            REQUIRE(piece.offset_in_shard == piece.global.lo % s);
            REQUIRE(piece.offset_in_shard + piece.global.size() <= s);
            next = piece.global.hi;
            ++checked;
          }
          REQUIRE(next == want.hi);
        }
        REQUIRE(tiled == n);
      }
  CHECK(checked > 1000);
}

namespace {

nn::ModelConfig tiny_model(int64_t layers = 2) {
  nn::ModelConfig c;
  c.vocab_size = 11;
  c.d_model = 8;
  c.n_layers = layers;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.ffn_hidden = 12;
  c.variant = nn::Variant::DepthKVFFN;
  c.max_seq_len = 16;
  c.validate();
  return c;
}

// A whole optimiser state for a model: per group, the full vectors of every kind, random where a
// parameter lies (exp_avg_sq positive) and zero in the alignment gaps between parameters, as in
// training (nothing ever updates a gap).
using FullState = std::map<std::string, std::vector<float>>;  // "<group>.<kind>"

FullState random_state(const nn::LanguageModel& model) {
  FullState full;
  uint64_t seed = 11;
  for (const auto& g : model.param_groups()) {
    for (const auto& kind : shard_kinds()) {
      std::vector<float> v = Tensor::randn({std::max<int64_t>(g.numel(), 1)}, ++seed).to_float_vector();
      v.resize(size_t(g.numel()));
      std::vector<float> masked(v.size(), 0.0f);
      for (size_t i = 0; i < g.params.size(); ++i)
        for (int64_t k = 0; k < g.params[i].tensor.numel(); ++k) {
          const size_t e = size_t(g.offsets[i] + k);
          masked[e] = kind == "exp_avg_sq" ? std::abs(v[e]) : v[e];
        }
      full[g.name + "." + kind] = masked;
    }
  }
  return full;
}

// Writes `full` as the checkpoint of `world` ranks at `step` into run_dir, as the ranks would.
std::string write_sharded(const std::string& run_dir, int64_t step, int world, const nn::LanguageModel& model,
                          const FullState& full, const nlohmann::json& config) {
  const std::string tmp = begin_checkpoint_folder(run_dir, step, ::getpid());
  nlohmann::json files = nlohmann::json::object();
  for (int r = 0; r < world; ++r) {
    NamedTensors shard;
    for (const auto& g : model.param_groups()) {
      const ElementRange own = owned_range(g.numel(), world, r);
      for (const auto& kind : shard_kinds()) {
        Tensor t = Tensor::zeros({shard_size(g.numel(), world)});
        const auto& v = full.at(g.name + "." + kind);
        std::memcpy(t.data<float>(), v.data() + own.lo, sizeof(float) * size_t(own.size()));
        shard.emplace_back(g.name + "." + kind, t);
      }
    }
    files[shard_file_name(r, world)] = write_shard_file(tmp, r, world, step, shard);
  }
  const nlohmann::json state = {{"step", step},
                                {"tokens", step * 100},
                                {"loader", nlohmann::json::object()},
                                {"config", config},
                                {"adamw_step", step}};
  return commit_checkpoint_folder(run_dir, step, tmp,
                                  sharded_manifest(step, world, group_layout(model, world), state, files), 0);
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("sharded checkpoint: 3 ranks' shards consolidate, reread and restore at 1 rank bit for bit",
          "[cpu][checkpoint][reshard]") {
  TempDir dir("sharded3");
  nn::LanguageModel model(tiny_model(), nn::ModelInit{1, Device::cpu(), DType::F32});
  const FullState full = random_state(model);
  const nlohmann::json config = {{"model", {{"d_model", 8}}}};
  const std::string ck3 = write_sharded((dir.path / "run3").string(), 5, 3, model, full, config);
  CHECK(checkpoint_incomplete_reason(ck3).empty());
  CHECK(latest_checkpoint((dir.path / "run3").string()) == ck3);
  CHECK(checkpoint_world_size(ck3) == 3);

  // Consolidated: every parameter, moment and master is the saved full vector's slice.
  const Checkpoint whole = consolidate_sharded(read_sharded_checkpoint(ck3), true, true);
  std::map<std::string, Tensor> opt(whole.optimizer.begin(), whole.optimizer.end());
  REQUIRE(whole.model.size() == model.parameters().size());
  for (const auto& g : model.param_groups())
    for (size_t i = 0; i < g.params.size(); ++i) {
      const std::string& name = g.params[i].name;
      const size_t n = size_t(g.params[i].tensor.numel()), off = size_t(g.offsets[i]);
      const auto m = std::find_if(whole.model.begin(), whole.model.end(), [&](auto& e) { return e.first == name; });
      REQUIRE(m != whole.model.end());
      CHECK(m->second.shape() == g.params[i].tensor.shape());
      CHECK(same_bits(m->second.data<float>(), full.at(g.name + ".master").data() + off, n));
      CHECK(same_bits(opt.at(name + ".master").data<float>(), full.at(g.name + ".master").data() + off, n));
      CHECK(same_bits(opt.at(name + ".exp_avg").data<float>(), full.at(g.name + ".exp_avg").data() + off, n));
      CHECK(same_bits(opt.at(name + ".exp_avg_sq").data<float>(), full.at(g.name + ".exp_avg_sq").data() + off, n));
    }
  CHECK(opt.at("__step__").to_int_vector()[0] == 5);
  CHECK(!whole.state.contains("adamw_step"));

  // Rank 1 of 2 reads its range from the 3 saved files: the overlapping ones only.
  const ShardedCheckpoint parsed = read_sharded_checkpoint(ck3);
  const auto& g0 = model.param_groups()[1];
  const ElementRange want = owned_range(g0.numel(), 2, 1);
  ShardReader reader(parsed, true);
  std::vector<float> got(size_t(want.size()));
  reader.read(g0.name, "exp_avg", want.lo, want.hi, got.data());
  CHECK(same_bits(got.data(), full.at(g0.name + ".exp_avg").data() + want.lo, got.size()));
  CHECK(reader.ranks_read() == std::vector<int>{1, 2});

  // Restored into a world of one, the optimiser and the model hold the saved values; saved again
  // at world one, the consolidated files equal those of the 3-rank checkpoint byte for byte.
  auto comm = make_single_process_communicator();
  ShardedOptimizer sharded(model, *comm, AdamWParams{});
  const nlohmann::json state = restore_sharded(ck3, config, model, sharded);
  CHECK(state["tokens"] == 500);
  CHECK(sharded.steps_taken() == 5);
  // The parameters follow the masters when gathered (ParameterSharding does it at first use).
  for (size_t g = 0; g < sharded.num_groups(); ++g) sharded.gather(g);
  for (const auto& g : model.param_groups())
    CHECK(same_bits(g.flat.data<float>(), full.at(g.name + ".master").data(), size_t(g.numel())));
  for (const auto& [name, t] : sharded.export_state())
    CHECK(same_bits(t.data<float>(), full.at(name).data(), size_t(t.numel())));
  const std::string ck1 = save_sharded_checkpoint(
      *comm, (dir.path / "run1").string(), 5, model, sharded,
      {{"step", 5}, {"tokens", 500}, {"loader", nlohmann::json::object()}, {"config", config}}, 0);
  CHECK(checkpoint_world_size(ck1) == 1);
  save_checkpoint((dir.path / "one3").string(), 5, consolidate_sharded(read_sharded_checkpoint(ck3), true, true));
  save_checkpoint((dir.path / "one1").string(), 5, consolidate_sharded(read_sharded_checkpoint(ck1), true, true));
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "state.json"})
    CHECK(file_bytes((dir.path / "one3/checkpoints/step-5" / f).string()) ==
          file_bytes((dir.path / "one1/checkpoints/step-5" / f).string()));

  // load_checkpoint reads the sharded folder as one rank's (what `moda eval` and a one-rank
  // --resume use).
  LoadedCheckpoint loaded = load_checkpoint((dir.path / "run3").string());
  CHECK(loaded.dir == ck3);
  CHECK(loaded.model.tensors.size() == model.parameters().size());

  // A one-rank checkpoint restores into the sharded optimiser too (resharding 1 -> N).
  nn::LanguageModel other(tiny_model(), nn::ModelInit{2, Device::cpu(), DType::F32});
  ShardedOptimizer other_opt(other, *comm, AdamWParams{});
  restore_sharded((dir.path / "one3/checkpoints/step-5").string(), config, other, other_opt);
  for (const auto& [name, t] : other_opt.export_state())
    CHECK(same_bits(t.data<float>(), full.at(name).data(), size_t(t.numel())));
}

TEST_CASE("sharded checkpoint: corruption and another model are errors naming the file, tensor or field",
          "[cpu][checkpoint][reshard]") {
  TempDir dir("shardbad");
  nn::LanguageModel model(tiny_model(), nn::ModelInit{1, Device::cpu(), DType::F32});
  const FullState full = random_state(model);
  const nlohmann::json config = {{"model", {{"d_model", 8}}}};
  const std::string run = (dir.path / "run").string();
  const std::string ck = write_sharded(run, 4, 2, model, full, config);
  const fs::path shard1 = fs::path(ck) / shard_file_name(1, 2);
  auto comm = make_single_process_communicator();
  ShardedOptimizer opt(model, *comm, AdamWParams{});

  SECTION("a flipped byte: the SHA-256 names the file") {
    auto bytes = file_bytes(shard1.string());
    bytes[bytes.size() - 3] ^= 0x40;
    std::ofstream(shard1, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    const std::string e = error_of([&] { restore_sharded(ck, config, model, opt); });
    CHECK_THAT(e, Catch::Contains(shard1.string()) && Catch::Contains("SHA-256"));
    CHECK_THAT(error_of([&] { load_checkpoint(run); }), Catch::Contains(shard1.string()));
  }
  SECTION("a truncated or missing shard: the folder is incomplete, naming the file") {
    fs::resize_file(shard1, fs::file_size(shard1) - 10);
    CHECK_THAT(error_of([&] { restore_sharded(ck, config, model, opt); }),
               Catch::Contains(shard1.string()) && Catch::Contains("the manifest says"));
    fs::remove(shard1);
    CHECK_THAT(checkpoint_incomplete_reason(ck), Catch::Contains(shard1.string() + " is missing"));
  }
  SECTION("a shard whose tensor does not match the manifest names the file and the tensor") {
    const auto& g = model.param_groups()[0];
    NamedTensors wrong;
    for (const auto& gg : model.param_groups())
      for (const auto& kind : shard_kinds())
        wrong.emplace_back(gg.name + "." + kind, Tensor::zeros({shard_size(gg.numel(), 2) + (&gg == &g ? 1 : 0)}));
    nlohmann::json manifest = read_checkpoint_manifest(ck);
    manifest["files"][shard_file_name(1, 2)] = write_shard_file(ck, 1, 2, 4, wrong);
    std::ofstream(fs::path(ck) / "manifest.json") << manifest.dump(2);
    CHECK_THAT(error_of([&] { restore_sharded(ck, config, model, opt); }),
               Catch::Contains(shard1.string()) && Catch::Contains("tensor '" + g.name + ".master'"));
  }
  SECTION("a manifest whose ranges are not the arithmetic's names the field") {
    nlohmann::json manifest = read_checkpoint_manifest(ck);
    manifest["groups"][0]["ranks"][1] = {1, 2};
    std::ofstream(fs::path(ck) / "manifest.json") << manifest.dump(2);
    CHECK_THAT(error_of([&] { read_sharded_checkpoint(ck); }), Catch::Contains("groups[0](embed).ranks[1]"));
  }
  SECTION("another model (same config text, other layout) names the group") {
    nn::LanguageModel bigger(tiny_model(3), nn::ModelInit{1, Device::cpu(), DType::F32});
    ShardedOptimizer bigger_opt(bigger, *comm, AdamWParams{});
    CHECK_THAT(error_of([&] { restore_sharded(ck, config, bigger, bigger_opt); }),
               Catch::Contains("parameter groups, this model has"));
    CHECK_THAT(error_of([&] {
                 restore_sharded(ck, {{"model", {{"d_model", 16}}}}, model, opt);
               }),
               Catch::Contains("model.d_model"));
  }
}
