// The trainer's promises when things go wrong (docs/reliability.md): one writer per run folder,
// SIGINT/SIGTERM save and stop, bad validation sets fail before training, resume refuses a
// changed model, and throughput counts the same steps in its tokens and its seconds.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "data/shard.h"
#include "distributed/checkpoint.h"
#include "distributed/metrics.h"
#include "distributed/resume_check.h"
#include "distributed/run_lock.h"
#include "distributed/trainer.h"
#include "nn/model_config.h"
#include "tests/trainer_fixture.h"

using namespace moda;
using namespace moda::testing;
namespace fs = std::filesystem;

TEST_CASE("run folder lock: a second writer is refused naming the holder's pid", "[cpu][train]") {
  auto run = fresh_run("locked");
  {
    RunFolderLock first(run.string());
    REQUIRE_THROWS_WITH(RunFolderLock(run.string()), Catch::Contains("is in use by another moda process") &&
                                                         Catch::Contains("pid " + std::to_string(::getpid())));
    REQUIRE_THROWS_WITH(train(train_config_from_json(tiny_config(2)), {run.string()}), Catch::Contains("in use"));
  }
  RunFolderLock again(run.string());  // released with its holder
}

TEST_CASE("trainer: SIGTERM finishes the step, saves, and the resumed run equals an unbroken one", "[cpu][train]") {
  auto cfg = train_config_from_json(tiny_config(12));
  auto straight = fresh_run("sig_straight"), stopped = fresh_run("sig_stopped");
  train(cfg, {straight.string()});
  std::thread killer([&] {
    // Signal once the run has logged its third step.
    for (int i = 0; i < 2000; ++i) {
      if (fs::exists(stopped / "metrics.jsonl") && metrics_records(stopped).size() >= 3) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(::getpid(), SIGTERM);
  });
  TrainSummary s = train(cfg, {stopped.string()});
  killer.join();
  REQUIRE(s.stopped_by_signal);
  REQUIRE(s.steps >= 3);
  REQUIRE(s.steps < 12);
  REQUIRE(latest_checkpoint(stopped.string()) ==
          (stopped / "checkpoints" / ("step-" + std::to_string(s.steps))).string());
  train(cfg, {stopped.string(), true});
  REQUIRE(logged_losses(stopped) == logged_losses(straight));
}

TEST_CASE("trainer: a validation set with no tokens fails before training starts", "[cpu][train]") {
  auto run = fresh_run("bad_val");
  const std::string empty = (tiny_corpus().dir / "empty_val.bin").string();
  data::write_shard(empty, {}, 1);
  auto cfg = tiny_config(3);
  cfg["data"]["val"] = {{"gpl", cfg["data"]["val"]["gpl"]}, {"empty", empty}};
  REQUIRE_THROWS_WITH(train(train_config_from_json(cfg), {run.string()}),
                      Catch::Contains("validation set 'empty'") && Catch::Contains("no token"));
  REQUIRE_FALSE(latest_checkpoint(run.string()).has_value());
  REQUIRE(metrics_records(run).empty());
}

TEST_CASE("trainer: resume refuses a changed model field and accepts a longer schedule", "[cpu][train]") {
  auto run = fresh_run("resume_fields");
  auto cfg = tiny_config(4);
  train(train_config_from_json(cfg), {run.string(), false, 2});
  auto changed = cfg;
  changed["model"]["norm"] = "post";
  REQUIRE_THROWS_WITH(train(train_config_from_json(changed), {run.string(), true}),
                      Catch::Contains("model.norm: checkpoint \"pre\", now \"post\""));
  auto longer = cfg;
  longer["train"]["steps"] = 6;
  TrainSummary s = train(train_config_from_json(longer), {run.string(), true});
  REQUIRE(s.steps == 6);
}

TEST_CASE("resume check: lists every differing leaf and only refuses the non-resumable ones", "[cpu][train]") {
  nlohmann::json a = {{"model", {{"d_model", 32}, {"rope_theta", 1e4}}}, {"train", {{"steps", 5}}}};
  nlohmann::json b = {{"model", {{"d_model", 32}, {"rope_theta", 5e5}}}, {"train", {{"steps", 9}, {"x", 1}}}};
  REQUIRE(differing_fields(a, b) == std::vector<std::string>{"model.rope_theta", "train.steps", "train.x"});
  REQUIRE_THROWS_WITH(check_resume_config(a, b, "ck"), Catch::Contains("model.rope_theta") &&
                                                           Catch::Contains("train.x") &&
                                                           !Catch::Contains("train.steps"));
  nlohmann::json c = a;
  c["train"]["steps"] = 100;
  REQUIRE_NOTHROW(check_resume_config(a, c, "ck"));
}

TEST_CASE("throughput: paused time is left out and each window's tokens match its seconds", "[cpu][train]") {
  using namespace std::chrono_literals;
  ThroughputMeter meter;
  meter.add_tokens(1000);
  std::this_thread::sleep_for(100ms);
  meter.pause();  // an evaluation: 300 ms that must not count
  std::this_thread::sleep_for(300ms);
  meter.resume();
  const double rate = meter.take();
  CHECK(rate < 1000 / 0.095);  // at least the 100 ms of training counted
  CHECK(rate > 1000 / 0.250);  // the 300 ms pause did not count
  // The next window starts empty: its tokens are only its own.
  meter.add_tokens(500);
  std::this_thread::sleep_for(100ms);
  const double next = meter.take();
  CHECK(next < 500 / 0.095);
  CHECK(next > 500 / 0.250);
}

TEST_CASE("metrics.jsonl: tokens are a hand count of the steps, with an evaluation between log steps", "[cpu][train]") {
  auto run = fresh_run("metrics_count");
  auto cfg = tiny_config(12);
  cfg["train"]["log_every"] = 4;
  cfg["train"]["eval_every"] = 6;  // between two log steps, as in the reported bug
  train(train_config_from_json(cfg), {run.string()});
  std::vector<nlohmann::json> steps;
  for (const auto& r : metrics_records(run))
    if (r.contains("loss")) steps.push_back(r);
  REQUIRE(steps.size() == 3);
  for (const auto& r : steps) {
    const int64_t step = r["step"].get<int64_t>();
    CHECK(r["tokens"].get<int64_t>() == step * 8 * 32);  // global_batch x seq_len per step
    CHECK(r["tokens_per_s"].get<double>() > 0);
    CHECK_FALSE(r.contains("mfu"));  // MFU is reported against a GPU's peak only
  }
}

TEST_CASE("flops: PaLM and causal conventions by hand for a small model", "[cpu][train]") {
  nn::ModelConfig c = nn::model_config_from_json(tiny_config(1)["model"]);
  const auto f = nn::training_flops_per_token(c, 32);
  const double hd = 4.0 * c.head_dim;
  CHECK(f.attention == 12.0 * 2 * hd * 32);
  CHECK(f.attention_causal == 12.0 * 2 * hd * 16.5);
  CHECK(f.palm_per_token() == f.dense + f.attention + f.depth + 6.0 * 320 * 32);
  CHECK(f.causal_per_token() == f.palm_per_token() - 12.0 * 2 * hd * 15.5);
}
