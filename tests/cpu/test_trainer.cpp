#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/attention_l0.h"
#include "core/error.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "distributed/checkpoint.h"
#include "distributed/evaluate.h"
#include "distributed/trainer.h"
#include "nn/language_model.h"
#include "tests/trainer_fixture.h"

using namespace moda;
using namespace moda::testing;
namespace fs = std::filesystem;

namespace {

// Tokens of an llm.c shard, read straight from the file (header: magic, version, count; 1024 bytes).
std::vector<int64_t> shard_tokens(const std::string& path) {
  std::string bytes = read_text(path);
  int32_t head[3];
  std::memcpy(head, bytes.data(), sizeof head);
  REQUIRE(head[0] == 20240520);
  std::vector<int64_t> out(static_cast<size_t>(head[2]));
  for (size_t i = 0; i < out.size(); ++i) {
    if (head[1] == 1) {
      uint16_t v;
      std::memcpy(&v, bytes.data() + 1024 + 2 * i, 2);
      out[i] = v;
    } else {
      uint32_t v;
      std::memcpy(&v, bytes.data() + 1024 + 4 * i, 4);
      out[i] = v;
    }
  }
  return out;
}

struct NllSum {
  double sum = 0;
  int64_t tokens = 0;
};

// Sum of -log p(next token) over every token of the shard but the first, from one forward pass
// per window of at most T inputs (the last one shorter: the model is causal, so a shorter window
// gives the same logits), log-softmax computed here in double.
NllSum shard_nll(const nn::LanguageModel& model, const std::string& path, int64_t T) {
  const auto tok = shard_tokens(path);
  const int64_t n = static_cast<int64_t>(tok.size()), V = model.config().vocab_size;
  NllSum r;
  for (int64_t start = 0; start + 1 < n; start += T) {
    const int64_t len = std::min(T, n - 1 - start);
    std::vector<int64_t> ids(tok.begin() + start, tok.begin() + start + len);
    const auto logits = model.logits(Tensor::from_ints(ids, {1, len})).to_double_vector();
    for (int64_t t = 0; t < len; ++t) {
      const double* row = logits.data() + t * V;
      const double mx = *std::max_element(row, row + V);
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
      r.sum += mx + std::log(z) - row[tok[start + t + 1]];
      ++r.tokens;
    }
  }
  return r;
}

}  // namespace

TEST_CASE("trainer: a short CPU run drives the loss well below its start", "[cpu][train]") {
  auto run = fresh_run("short");
  TrainSummary s = train(train_config_from_json(tiny_config(150)), {run.string()});
  auto losses = logged_losses(run);
  REQUIRE(losses.size() == 150);
  REQUIRE(losses.front() > 5.0);  // ~ln(320) at initialisation
  REQUIRE(s.last_loss < losses.front() - 1.5);
  REQUIRE(fs::exists(run / "config.json"));
  REQUIRE(latest_checkpoint(run.string()).has_value());
  REQUIRE(s.eval.sets.count("gpl") == 1);
}

TEST_CASE("trainer: resuming gives bit-identical losses to a run that never stopped", "[cpu][train]") {
  auto cfg_json = tiny_config(12);
  cfg_json["train"]["checkpoint_every"] = 6;
  TrainConfig cfg = train_config_from_json(cfg_json);
  auto straight = fresh_run("straight"), interrupted = fresh_run("interrupted");
  train(cfg, {straight.string()});
  train(cfg, {interrupted.string(), false, 6});
  REQUIRE(logged_losses(interrupted).size() == 6);
  REQUIRE_THROWS_WITH(train(cfg, {interrupted.string()}), Catch::Contains("--resume"));
  train(cfg, {interrupted.string(), true});
  auto a = logged_losses(straight), b = logged_losses(interrupted);
  REQUIRE(a.size() == 12);
  REQUIRE(a == b);  // bit for bit
  auto wa = load_checkpoint(straight.string()).model.tensors, wb = load_checkpoint(interrupted.string()).model.tensors;
  for (auto& [name, t] : wa) REQUIRE(t.to_float_vector() == wb.at(name).to_float_vector());
}

TEST_CASE("trainer: a non-finite loss stops the run naming the step, last checkpoint intact", "[cpu][train]") {
  auto cfg_json = tiny_config(10);
  cfg_json["optim"] = {{"lr", 1e12}, {"min_lr", 1e12}, {"grad_clip", 0.0}};
  cfg_json["train"]["checkpoint_every"] = 1;
  auto run = fresh_run("nan");
  REQUIRE_THROWS_WITH(train(train_config_from_json(cfg_json), {run.string()}),
                      Catch::Contains("non-finite") && Catch::Contains("step") && Catch::Contains("intact"));
  auto ck = load_checkpoint(run.string());
  REQUIRE(ck.state["step"].get<int64_t>() >= 1);
}

TEST_CASE("evaluate: JSON report has per-set loss, ppl, tokens and a token-weighted average", "[cpu][train]") {
  TrainConfig cfg = train_config_from_json(tiny_config(1));
  nn::LanguageModel model(cfg.model, nn::ModelInit{1, Device::cpu(), DType::F32});
  auto sets = cfg.data.val;
  sets["gpl_again"] = sets["gpl"];
  EvalReport r = evaluate(model, sets, 32, 4, 0, Device::cpu());
  auto j = r.to_json();
  REQUIRE(j["sets"]["gpl"]["tokens"].get<int64_t>() > 0);
  REQUIRE(j["sets"]["gpl"]["ppl"].get<double>() == Approx(std::exp(j["sets"]["gpl"]["loss"].get<double>())));
  REQUIRE(j["average"]["loss"].get<double>() == Approx(j["sets"]["gpl"]["loss"].get<double>()));
  REQUIRE(j["average"]["tokens"].get<int64_t>() == 2 * j["sets"]["gpl"]["tokens"].get<int64_t>());
  // Deterministic: the same model and sets give the same numbers.
  REQUIRE(evaluate(model, sets, 32, 4, 0, Device::cpu()).average.loss == r.average.loss);
}

TEST_CASE("train config: errors name the field, the value and the rule", "[cpu][train]") {
  auto j = tiny_config(10);
  j["train"]["global_batch"] = 6;
  REQUIRE_THROWS_WITH(train_config_from_json(j), Catch::Contains("train.global_batch") && Catch::Contains("multiple"));
  j = tiny_config(10);
  j["optim"]["lr_typo"] = 1;
  REQUIRE_THROWS_WITH(train_config_from_json(j), Catch::Contains("unknown field 'lr_typo'"));
  j = tiny_config(10);
  j["data"]["train"] = "/nonexistent/*.bin";
  REQUIRE_THROWS_WITH(train_config_from_json(j), Catch::Contains("data.train") && Catch::Contains("no file matches"));
  j = tiny_config(10);
  j["train"]["activation_checkpointing"] = "layer";
  REQUIRE_THROWS_WITH(train_config_from_json(j), Catch::Contains("train.activation_checkpointing") &&
                                                     Catch::Contains("layer") && Catch::Contains("\"block\""));
  j = tiny_config(10);
  j["train"]["attention_l0"] = "flash";
  REQUIRE_THROWS_WITH(train_config_from_json(j), Catch::Contains("train.attention_l0") && Catch::Contains("flash") &&
                                                     Catch::Contains("\"cudnn\""));
}

TEST_CASE("train config: attention_l0 names parse both ways, and cudnn on the CPU is accepted", "[cpu][train]") {
  for (const char* name : {"auto", "moda", "cudnn"})
    CHECK(std::string(ops::attention_l0_name(ops::parse_attention_l0(name, "train.attention_l0"))) == name);
  REQUIRE_THROWS_WITH(ops::parse_attention_l0("cuDNN", "train.attention_l0"),
                      Catch::Contains("train.attention_l0") && Catch::Contains("cuDNN") && Catch::Contains("\"moda\""));
  ops::set_attention_l0(ops::AttentionL0::Cudnn, Device::cpu());  // CPU runs never use it: no check
  CHECK(ops::attention_l0() == ops::AttentionL0::Cudnn);
  ops::set_attention_l0(ops::AttentionL0::Auto, Device::cpu());
  CHECK(ops::attention_l0() == ops::AttentionL0::Auto);
}

TEST_CASE("evaluate: losses are token-weighted within and across sets, against an independent count", "[cpu][train]") {
  TrainConfig cfg = train_config_from_json(tiny_config(1));
  nn::LanguageModel model(cfg.model, nn::ModelInit{1, Device::cpu(), DType::F32});
  // A random model predicts nearly uniformly, so every weighting would give ~ln(V). Scaling the
  // (tied) embedding makes the logits peaked and the per-token losses, and so the two sets'
  // means, clearly different.
  for (const auto& p : model.parameters())
    if (p.name == "embed.weight") {
      Tensor t = p.tensor;
      auto v = t.to_float_vector();
      for (auto& x : v) x *= 40.0f;
      t.copy_(Tensor::from_vector(v, t.shape()));
    }
  const std::string gpl = (tiny_corpus().dir / "gpl_val_000000.bin").string();
  const std::string bsd = (tiny_corpus().dir / "bsd_train_000000.bin").string();
  const int64_t T = 32;
  NllSum g = shard_nll(model, gpl, T), b = shard_nll(model, bsd, T);
  // Two sets of clearly different lengths (and neither a whole number of batches of windows).
  REQUIRE(std::abs(g.tokens - b.tokens) > g.tokens / 4);
  const double g_loss = g.sum / g.tokens, b_loss = b.sum / b.tokens;
  const double weighted = (g.sum + b.sum) / static_cast<double>(g.tokens + b.tokens);
  REQUIRE(std::abs(g_loss - b_loss) > 0.2);
  REQUIRE(std::abs(weighted - 0.5 * (g_loss + b_loss)) > 0.02);  // the test can tell the weightings apart

  EvalReport r = evaluate(model, {{"gpl", {gpl}}, {"bsd", {bsd}}}, T, 3, 0, Device::cpu());
  REQUIRE(r.sets.at("gpl").tokens == g.tokens);
  REQUIRE(r.sets.at("bsd").tokens == b.tokens);
  CHECK(r.sets.at("gpl").loss == Approx(g_loss).epsilon(1e-5));
  CHECK(r.sets.at("bsd").loss == Approx(b_loss).epsilon(1e-5));
  REQUIRE(r.average.tokens == g.tokens + b.tokens);
  CHECK(r.average.loss == Approx(weighted).epsilon(1e-5));
}

TEST_CASE("trainer: resuming from a checkpoint older than the last logged step neither repeats nor loses records",
          "[cpu][train]") {
  auto cfg_json = tiny_config(12);
  cfg_json["train"]["checkpoint_every"] = 4;
  cfg_json["train"]["eval_every"] = 2;
  TrainConfig cfg = train_config_from_json(cfg_json);
  auto straight = fresh_run("straight_logged"), crashed = fresh_run("crashed_logged");
  train(cfg, {straight.string()});
  // A run that logged (and evaluated) steps 5 and 6 but crashed before their checkpoint was
  // complete: its newest checkpoint is step 4, and the crash cut the last metrics line short.
  train(cfg, {crashed.string(), false, 6});
  fs::remove_all(crashed / "checkpoints" / "step-6");
  std::ofstream(crashed / "checkpoints" / "latest", std::ios::trunc) << "step-4\n";
  std::ofstream(crashed / "metrics.jsonl", std::ios::app) << "{\"step\": 7, \"loss\": 5.";
  REQUIRE(load_checkpoint(crashed.string()).state["step"].get<int64_t>() == 4);
  train(cfg, {crashed.string(), true});

  auto a = metrics_records(straight), b = metrics_records(crashed);
  std::vector<int64_t> train_steps, eval_steps;
  for (const auto& r : b) (r.contains("eval") ? eval_steps : train_steps).push_back(r["step"].get<int64_t>());
  REQUIRE(train_steps == std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  REQUIRE(eval_steps == std::vector<int64_t>{2, 4, 6, 8, 10, 12});
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("record " << i << ": " << b[i].dump());
    REQUIRE(a[i]["step"] == b[i]["step"]);
    if (a[i].contains("eval"))
      REQUIRE(a[i]["eval"]["average"]["loss"].get<double>() == b[i]["eval"]["average"]["loss"].get<double>());
    else
      REQUIRE(a[i]["loss"].get<double>() == b[i]["loss"].get<double>());  // bit for bit on the CPU
  }
}
