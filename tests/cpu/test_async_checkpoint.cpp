// Checkpoint writes that overlap training (train.async_checkpoint, docs/reliability.md, section
// 5b): the background write helper, the config field, and a trainer whose asynchronous saves
// write the bytes a synchronous one writes. tests/cli/async_checkpoint.sh covers 2 ranks.
#include <catch2/catch.hpp>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "core/error.h"
#include "distributed/background_write.h"
#include "distributed/checkpoint.h"
#include "distributed/resume_check.h"
#include "distributed/train_config.h"
#include "distributed/trainer.h"
#include "tests/trainer_fixture.h"

using namespace moda;
using namespace moda::testing;
namespace fs = std::filesystem;

TEST_CASE("background write: the result or the error comes back on join, inline when not async", "[cpu][checkpoint]") {
  for (bool background : {true, false}) {
    BackgroundWrite ok([] { return nlohmann::json{{"bytes", 3}}; }, background);
    while (!ok.finished()) std::this_thread::yield();
    CHECK(ok.join() == nlohmann::json{{"bytes", 3}});
    BackgroundWrite bad([]() -> nlohmann::json { throw Error("writing 'x' failed: No space left on device"); },
                        background);
    REQUIRE_THROWS_WITH(bad.join(), Catch::Contains("No space left on device"));
  }
  BackgroundWrite inline_write([] { return nlohmann::json(1); }, false);
  CHECK(inline_write.finished());
}

TEST_CASE("train config: async_checkpoint defaults to true, is a boolean and may change on resume",
          "[cpu][checkpoint]") {
  auto j = tiny_config(1);
  TrainConfig cfg = train_config_from_json(j);
  CHECK(cfg.train.async_checkpoint);
  CHECK(cfg.resolved["train"]["async_checkpoint"] == true);
  j["train"]["async_checkpoint"] = false;
  CHECK_FALSE(train_config_from_json(j).train.async_checkpoint);
  j["train"]["async_checkpoint"] = 1;
  REQUIRE_THROWS_WITH(train_config_from_json(j), Catch::Contains("async_checkpoint"));
  auto saved = cfg.resolved;  // written before the field existed, or with the other value
  saved["train"].erase("async_checkpoint");
  CHECK_NOTHROW(check_resume_config(saved, cfg.resolved, "ckpt"));
  saved["train"]["async_checkpoint"] = false;
  CHECK_NOTHROW(check_resume_config(saved, cfg.resolved, "ckpt"));
}

TEST_CASE("trainer: asynchronous checkpoints hold the bytes of synchronous ones and record their stall",
          "[cpu][checkpoint][train]") {
  auto run_with = [](bool async, const std::string& name) {
    auto j = tiny_config(6);
    j["train"]["checkpoint_every"] = 2;
    j["train"]["keep_checkpoints"] = 0;
    j["train"]["async_checkpoint"] = async;
    auto run = fresh_run(name);
    train(train_config_from_json(j), {run.string()});
    return run;
  };
  const fs::path sync = run_with(false, "ckpt_sync"), async = run_with(true, "ckpt_async");
  for (const char* step : {"step-2", "step-4", "step-6"}) {
    for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
      INFO(step << "/" << file);
      REQUIRE(read_text((sync / "checkpoints" / step / file).string()) ==
              read_text((async / "checkpoints" / step / file).string()));
    }
    auto a = load_checkpoint((sync / "checkpoints" / step).string()).state;
    auto b = load_checkpoint((async / "checkpoints" / step).string()).state;
    a["config"]["train"].erase("async_checkpoint");
    b["config"]["train"].erase("async_checkpoint");
    REQUIRE(a == b);
  }
  CHECK(read_text((async / "checkpoints" / "latest").string()) == "step-6\n");
  for (const auto& [run, async_flag] : {std::pair{sync, false}, std::pair{async, true}}) {
    const auto recs = checkpoint_records(run);
    REQUIRE(recs.size() == 3);
    for (size_t i = 0; i < recs.size(); ++i) {
      INFO(recs[i].dump());
      CHECK(recs[i]["step"] == 2 * static_cast<int64_t>(i + 1));
      CHECK(recs[i]["checkpoint"]["async"] == async_flag);
      CHECK(recs[i]["checkpoint"]["stall_s"].get<double>() >= 0);
      CHECK(recs[i]["checkpoint"]["write_s"].get<double>() > 0);
      CHECK(recs[i]["checkpoint"]["committed_after_step"].get<int64_t>() >= recs[i]["step"].get<int64_t>());
    }
  }
  CHECK(logged_losses(sync) == logged_losses(async));
}
