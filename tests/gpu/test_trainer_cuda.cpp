// Resume on the GPU (bf16 compute, fp32 masters and moments in the optimizer state): a run stopped
// at a checkpoint and resumed must continue like a run that never stopped. The MoDA backward
// accumulates dq with fp32 atomics, so two uninterrupted runs may differ in the last bits; the
// resumed run must stay as close to the uninterrupted one as a second uninterrupted run does.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/corpus.h"
#include "data/tokenizer.h"
#include "distributed/checkpoint.h"
#include "distributed/trainer.h"
#include "nn/model_config.h"
#include "tests/compare.h"

using namespace moda;
namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TempCorpus {
  fs::path dir = fs::temp_directory_path() / ("moda_trainer_cuda_" + std::to_string(::getpid()));
  TempCorpus() {
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string src = std::string(MODA_SOURCE_DIR) + "/tests/fixtures/tokenizer/gpl3_excerpt.txt";
    auto tok = data::Tokenizer::train({read_text(src)}, 320);
    data::EncodeOptions opt;
    opt.val_fraction = 0.2;
    data::encode_corpus(tok, {src}, (dir / "gpl").string(), opt);
  }
  ~TempCorpus() { fs::remove_all(dir); }
};

// A tiny bf16 model the fused kernels support (head_dim 64).
nlohmann::json tiny_gpu_config(const fs::path& dir, int64_t steps) {
  const auto d = dir.string();
  return {{"model",
           {{"vocab_size", 320},
            {"d_model", 128},
            {"n_layers", 3},
            {"n_heads", 2},
            {"n_kv_heads", 1},
            {"ffn_hidden", 256},
            {"variant", "depth_kv_ffn"},
            {"norm", "pre"}}},
          {"data", {{"train", d + "/gpl_train_*.bin"}, {"val", {{"gpl", d + "/gpl_val_*.bin"}}}, {"seq_len", 64}}},
          {"optim", {{"lr", 3e-3}, {"min_lr", 3e-4}, {"warmup_steps", 2}}},
          {"train",
           {{"steps", steps},
            {"global_batch", 8},
            {"micro_batch", 4},
            {"log_every", 1},
            {"checkpoint_every", 5},
            {"device", "cuda"},
            {"eval_max_batches", 2}}}};
}

std::vector<double> logged_losses(const fs::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<double> out;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

}  // namespace

TEST_CASE("trainer cuda: a bf16 run resumed from its checkpoint matches one that never stopped", "[gpu][train]") {
  TempCorpus corpus;
  TrainConfig cfg = train_config_from_json(tiny_gpu_config(corpus.dir, 10));
  const fs::path straight = corpus.dir / "straight", again = corpus.dir / "again", resumed = corpus.dir / "resumed";
  train(cfg, {straight.string()});
  train(cfg, {again.string()});
  train(cfg, {resumed.string(), false, 5});
  REQUIRE(logged_losses(resumed).size() == 5);
  train(cfg, {resumed.string(), true});

  const auto a = logged_losses(straight), b = logged_losses(again), r = logged_losses(resumed);
  REQUIRE(a.size() == 10);
  REQUIRE(r.size() == 10);
  const double noise = test::max_abs_diff(a, b);  // run-to-run difference (dq atomics)
  const double resume_error = test::max_abs_diff(a, r);
  INFO("run-to-run " << noise << ", resumed vs straight " << resume_error);
  // Losing the moments, the masters or the loader position moves the loss by far more than this.
  REQUIRE(resume_error <= std::max(4 * noise, 2e-3));
  REQUIRE(a.back() < a.front() - 0.2);  // it trained: the comparison is not between flat lines

  // The final weights (f32 in the checkpoint) agree to bf16 precision.
  auto wa = load_checkpoint(straight.string()).model.tensors, wr = load_checkpoint(resumed.string()).model.tensors;
  for (auto& [name, t] : wa) {
    INFO(name);
    REQUIRE(test::rel_l2(wr.at(name), t) < 2e-2);
  }
}

TEST_CASE("trainer cuda: metrics.jsonl MFU is tokens/s x the PaLM FLOPs per token / peak, tokens a hand count",
          "[gpu][train]") {
  TempCorpus corpus;
  nlohmann::json j = tiny_gpu_config(corpus.dir, 4);
  j["train"]["checkpoint_every"] = 0;
  TrainConfig cfg = train_config_from_json(j);
  const fs::path run = corpus.dir / "mfu";
  train(cfg, {run.string()});
  // Hand count for the tiny model: attention 12 x layers x Hq x d x T over all T keys (PaLM);
  // the causal count reads (T + 1) / 2 keys per query.
  const auto f = nn::training_flops_per_token(cfg.model, 64);
  REQUIRE(f.attention == 12.0 * 3 * 2 * 64 * 64);
  REQUIRE(f.attention_causal == 12.0 * 3 * 2 * 64 * 32.5);
  std::ifstream in(run / "metrics.jsonl");
  std::string line;
  int steps = 0;
  while (std::getline(in, line)) {
    auto r = nlohmann::json::parse(line);
    if (!r.contains("loss")) continue;
    ++steps;
    const double tps = r["tokens_per_s"].get<double>();
    REQUIRE(r["tokens"].get<int64_t>() == r["step"].get<int64_t>() * 8 * 64);
    REQUIRE(r["mfu"].get<double>() == Approx(tps * f.palm_per_token() / 989.4e12).epsilon(1e-9));
    REQUIRE(r["mfu_causal"].get<double>() == Approx(tps * f.causal_per_token() / 989.4e12).epsilon(1e-9));
    REQUIRE(r["peak_reserved_gib"].get<double>() > 0);
  }
  REQUIRE(steps == 4);
}

// The fully sharded path at a world of one on the GPU (NCCL communicator when built with NCCL:
// parameters gathered per group from fp32 master shards, freed after each block, gradients
// reduce-scattered): the same losses as the unsharded trainer to bf16 noise, for ZeRO-3 and
// ZeRO-2 and with bf16 gradient reduction.
TEST_CASE("trainer cuda: the sharded path at one rank trains like the unsharded trainer", "[gpu][train]") {
  TempCorpus corpus;
  nlohmann::json j = tiny_gpu_config(corpus.dir, 8);
  j["train"]["checkpoint_every"] = 0;
  const fs::path plain = corpus.dir / "plain", again = corpus.dir / "again";
  train(train_config_from_json(j), {plain.string()});
  train(train_config_from_json(j), {again.string()});
  const auto a = logged_losses(plain);
  const double noise = test::max_abs_diff(a, logged_losses(again));
  REQUIRE(a.size() == 8);
  REQUIRE(a.back() < a.front() - 0.2);
  for (auto [reshard, reduce] : {std::pair{true, "fp32"}, std::pair{false, "fp32"}, std::pair{true, "bf16"}}) {
    nlohmann::json s = j;
    s["parallel"] = {{"sharding", "full"}, {"reshard_after_forward", reshard}, {"reduce_dtype", reduce}};
    const fs::path run = corpus.dir / ("sharded_" + std::to_string(reshard) + reduce);
    train(train_config_from_json(s), {run.string()});
    const auto b = logged_losses(run);
    INFO("reshard_after_forward " << reshard << ", reduce " << reduce << ": run-to-run " << noise
                                  << ", sharded vs plain " << test::max_abs_diff(a, b));
    REQUIRE(b.size() == a.size());
    // The fp32 masters are the same; what differs is where the bf16 casts happen (and bf16 sums).
    REQUIRE(test::max_abs_diff(a, b) <= std::max(4 * noise, 2e-2));
  }
}

// A sharded checkpoint written on the GPU (fp32 master and moment shards copied to the host) and
// resumed: the resumed run continues like one that never stopped, to run-to-run noise.
TEST_CASE("trainer cuda: a sharded run resumed from its sharded checkpoint matches one that never stopped",
          "[gpu][train]") {
  TempCorpus corpus;
  nlohmann::json j = tiny_gpu_config(corpus.dir, 10);
  j["parallel"] = {{"sharding", "full"}};
  TrainConfig cfg = train_config_from_json(j);
  const fs::path straight = corpus.dir / "straight", again = corpus.dir / "again", resumed = corpus.dir / "resumed";
  train(cfg, {straight.string()});
  train(cfg, {again.string()});
  train(cfg, {resumed.string(), false, 5});
  REQUIRE(fs::exists(resumed / "checkpoints" / "step-5" / "rank-00000-of-00001.safetensors"));
  train(cfg, {resumed.string(), true});
  const auto a = logged_losses(straight), r = logged_losses(resumed);
  REQUIRE(r.size() == a.size());
  const double noise = test::max_abs_diff(a, logged_losses(again));
  INFO("run-to-run " << noise << ", resumed vs straight " << test::max_abs_diff(a, r));
  REQUIRE(test::max_abs_diff(a, r) <= std::max(4 * noise, 2e-3));
}
