#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "distributed/checkpoint.h"
#include "distributed/evaluate.h"
#include "distributed/trainer.h"
#include "nn/language_model.h"

using namespace moda;
namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A tiny real-text corpus (the GPL-3 excerpt) tokenized with a small BPE vocabulary, made once.
struct TinyCorpus {
  fs::path dir;
  TinyCorpus() {
    dir = fs::temp_directory_path() / ("moda_trainer_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::string src = std::string(MODA_SOURCE_DIR) + "/tests/fixtures/tokenizer/gpl3_excerpt.txt";
    auto tok = data::Tokenizer::train({read_text(src)}, 320);
    data::EncodeOptions opt;
    opt.val_fraction = 0.2;
    data::encode_corpus(tok, {src}, (dir / "gpl").string(), opt);
  }
  ~TinyCorpus() { fs::remove_all(dir); }
};

TinyCorpus& corpus() {
  static TinyCorpus c;
  return c;
}

nlohmann::json tiny_config(int64_t steps) {
  auto d = corpus().dir.string();
  return {{"model",
           {{"vocab_size", 320},
            {"d_model", 32},
            {"n_layers", 2},
            {"n_heads", 4},
            {"n_kv_heads", 2},
            {"ffn_hidden", 64},
            {"variant", "depth_kv_ffn"},
            {"norm", "pre"}}},
          {"data", {{"train", d + "/gpl_train_*.bin"}, {"val", {{"gpl", d + "/gpl_val_*.bin"}}}, {"seq_len", 32}}},
          {"optim", {{"lr", 1e-2}, {"min_lr", 1e-3}, {"warmup_steps", 5}}},
          {"train",
           {{"steps", steps},
            {"global_batch", 8},
            {"micro_batch", 4},
            {"log_every", 1},
            {"device", "cpu"},
            {"eval_max_batches", 4}}}};
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

fs::path fresh_run(const std::string& name) {
  fs::path p = corpus().dir / name;
  fs::remove_all(p);
  return p;
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
}
