// A point's state read from its run folder: done / partial / failed / not started, and what
// the report takes from it (final train loss, final validation, throughput, wall time).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include "core/json_config.h"
#include "sweep/point_config.h"
#include "sweep/point_status.h"
#include "sweep/results.h"
#include "sweep/run_folder.h"
#include "tests/test_support.h"

using moda::testing::TempDir;
using nlohmann::json;
namespace sw = moda::sweep;
namespace fs = std::filesystem;

namespace {

void append_record(const std::string& dir, const json& r) {
  std::ofstream(dir + "/metrics.jsonl", std::ios::app) << r.dump() << "\n";
}

json train_record(int step, double loss, int tokens, double tps) {
  return {{"step", step}, {"loss", loss}, {"tokens", tokens}, {"tokens_per_s", tps}};
}

json eval_record(int step, double loss_a, double loss_b) {
  return {{"step", step},
          {"eval",
           {{"sets",
             {{"a", {{"loss", loss_a}, {"ppl", std::exp(loss_a)}, {"tokens", 100}}},
              {"b", {{"loss", loss_b}, {"ppl", std::exp(loss_b)}, {"tokens", 300}}}}},
            {"average", {{"loss", (loss_a * 100 + loss_b * 300) / 400}}}}}};
}

// A checkpoint folder as the trainer leaves it (only what the status reads: the manifest, the
// pointer).
void checkpoint(const std::string& dir, int step, bool point_latest = true) {
  const std::string ck = dir + "/checkpoints/step-" + std::to_string(step);
  fs::create_directories(ck);
  std::ofstream(ck + "/manifest.json") << "{}";
  if (point_latest) std::ofstream(dir + "/checkpoints/latest", std::ios::trunc) << "step-" << step;
}

}  // namespace

TEST_CASE("sweep point status: not started, partial, done, failed, no final eval", "[sweep]") {
  TempDir tmp("sweep_status");
  const std::string dir = tmp / "run";
  CHECK(sw::inspect_point(dir, 8, true).state == sw::PointState::NotStarted);  // no folder at all

  fs::create_directories(dir);
  append_record(dir, train_record(2, 5.0, 64, 1000));
  auto st = sw::inspect_point(dir, 8, true);
  CHECK(st.state == sw::PointState::NotStarted);  // logged, but no checkpoint to resume from
  CHECK(st.logged_step == 2);

  checkpoint(dir, 4);
  append_record(dir, train_record(4, 4.5, 128, 1000));
  st = sw::inspect_point(dir, 8, true);
  CHECK(st.state == sw::PointState::Partial);
  CHECK(st.describe() == "partial (step 4 of 8)");

  // The sweep recorded a failed attempt: failed, with the checkpoint to resume from.
  sw::record_attempt(dir, {"2026-12-02T08:00:00Z", 3.5, 1, false, "moda train"});
  st = sw::inspect_point(dir, 8, true);
  CHECK(st.state == sw::PointState::Failed);
  CHECK(st.describe() == "failed (exit 1, checkpoint at step 4 of 8)");

  // The final checkpoint without its evaluation: resuming has nothing left to do.
  checkpoint(dir, 8);
  append_record(dir, train_record(8, 4.0, 256, 1000));
  sw::record_attempt(dir, {"2026-12-02T08:01:00Z", 2.0, 0, true, "moda train --resume"});
  CHECK(sw::inspect_point(dir, 8, true).state == sw::PointState::NoFinalEval);
  CHECK(sw::inspect_point(dir, 8, false).state == sw::PointState::Done);  // no validation sets: done

  // An evaluation of an earlier step is not the final one; the final step's is.
  append_record(dir, eval_record(4, 5.0, 5.0));
  CHECK(sw::inspect_point(dir, 8, true).state == sw::PointState::NoFinalEval);
  append_record(dir, eval_record(8, 3.0, 4.0));
  CHECK(sw::inspect_point(dir, 8, true).state == sw::PointState::Done);
  // More steps asked for than trained (the manifest raised train.steps): partial again.
  CHECK(sw::inspect_point(dir, 12, true).state == sw::PointState::Partial);

  // A last line cut short by a kill is skipped, not an error.
  std::ofstream(dir + "/metrics.jsonl", std::ios::app) << "{\"step\": 9, \"lo";
  CHECK(sw::inspect_point(dir, 8, true).state == sw::PointState::Done);
  CHECK(sw::read_attempts(dir).size() == 2);

  // The checkpoints deleted once the point finished (its results moved off the training
  // machine): still done, since the final step and its evaluation are logged; without the final
  // evaluation, or short of the final step, it starts again.
  fs::remove_all(dir + "/checkpoints");
  st = sw::inspect_point(dir, 8, true);
  CHECK(st.state == sw::PointState::Done);
  CHECK(st.describe() == "done (checkpoints removed)");
  CHECK(sw::inspect_point(dir, 12, true).state == sw::PointState::NotStarted);
}

TEST_CASE("sweep point status: a finished point whose checkpoints were removed", "[sweep]") {
  TempDir tmp("sweep_status_pruned");
  const std::string dir = tmp / "run";
  fs::create_directories(dir);
  append_record(dir, train_record(8, 4.0, 256, 1000));
  CHECK(sw::inspect_point(dir, 8, true).state == sw::PointState::NotStarted);  // no final evaluation
  CHECK(sw::inspect_point(dir, 8, false).state == sw::PointState::Done);       // none configured
  append_record(dir, eval_record(8, 3.0, 4.0));
  CHECK(sw::inspect_point(dir, 8, true).state == sw::PointState::Done);
  CHECK(sw::inspect_point(dir, 12, true).state == sw::PointState::NotStarted);  // more steps asked for
}

TEST_CASE("sweep point status: a folder trained under another config is stale, naming the fields", "[sweep]") {
  TempDir tmp("sweep_stale");
  const std::string dir = tmp / "run";
  fs::create_directories(dir);
  checkpoint(dir, 8);
  append_record(dir, train_record(8, 4.0, 256, 1000));
  append_record(dir, eval_record(8, 3.0, 4.0));
  // The manifest's side as the sweep resolves it; the run's config.json as the trainer wrote it.
  const json doc = moda::read_json_file(std::string(MODA_SOURCE_DIR) + "/experiments/tiny-cpu.json");
  const json manifest_config = sw::resolve_config_document(doc);
  json run_config = manifest_config;
  auto write_run_config = [&] { std::ofstream(dir + "/config.json", std::ios::trunc) << run_config.dump(); };
  write_run_config();
  CHECK(sw::inspect_point(dir, 8, true, &manifest_config).state == sw::PointState::Done);
  CHECK(sw::inspect_point(dir, 8, true).state == sw::PointState::Done);  // no config given: not compared

  // Fields that do not change the experiment may differ; a field an older build did not write is
  // read with today's default, so it differs only when the manifest asks for another value.
  run_config["train"]["log_every"] = 1;
  run_config["train"].erase("attention_l0");
  run_config["model"].erase("depth_proj_last_layer");
  write_run_config();
  CHECK(sw::inspect_point(dir, 8, true, &manifest_config).state == sw::PointState::Done);

  // The learning rate and the norm placement do: stale, each field named with both values.
  run_config["optim"]["lr"] = 0.5;
  run_config["model"]["norm"] = "reordered";
  write_run_config();
  const auto st = sw::inspect_point(dir, 8, true, &manifest_config);
  CHECK(st.state == sw::PointState::Stale);
  REQUIRE(st.stale_fields.size() == 2);
  CHECK(st.describe() == "stale: trained with another config (model.norm: run \"reordered\", manifest " +
                             manifest_config["model"]["norm"].dump() + "; optim.lr: run 0.5, manifest " +
                             manifest_config["optim"]["lr"].dump() + ")");
  // A partial run under another config is stale too: resuming it would mix two experiments.
  CHECK(sw::inspect_point(dir, 12, true, &manifest_config).state == sw::PointState::Stale);
  // A config.json this build cannot read as a config is stale, saying why.
  std::ofstream(dir + "/config.json", std::ios::trunc) << R"({"model": {"n_layerz": 2}})";
  const auto bad = sw::inspect_point(dir, 8, true, &manifest_config);
  CHECK(bad.state == sw::PointState::Stale);
  CHECK_THAT(bad.describe(), Catch::Contains("config.json not readable as a config"));
}

TEST_CASE("sweep point status: running while a live process training into the folder holds its lock", "[sweep]") {
  TempDir tmp("sweep_running");
  const std::string dir = tmp / "run";
  fs::create_directories(dir);
  checkpoint(dir, 2);
  char host[256] = {};
  REQUIRE(gethostname(host, sizeof host - 1) == 0);
  auto write_lock = [&](long pid) {
    std::ofstream(dir + "/.lock", std::ios::trunc) << "host " << host << ", pid " << pid << "\n";
  };
  // This test process is alive but trains into no folder: a stale lock whose pid was reused.
  write_lock(::getpid());
  CHECK(sw::inspect_point(dir, 8, true).state == sw::PointState::Partial);
  // A live process whose command line names the folder with --run-dir.
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const std::string run_dir = fs::path(dir).lexically_normal().string() + "/";  // another spelling
    // sh -c SCRIPT NAME ARGS...: the arguments stay on sh's command line ("; true": no exec of sleep).
    execlp("sh", "sh", "-c", "sleep 30; true", "sh", "--run-dir", run_dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  write_lock(child);
  bool seen = false;  // the exec may take a moment to show the new command line
  for (int i = 0; i < 100 && !seen; ++i) {
    seen = sw::inspect_point(dir, 8, true).state == sw::PointState::Running;
    if (!seen) usleep(20 * 1000);
  }
  CHECK(seen);
  CHECK(sw::inspect_point(dir, 8, true).describe() ==
        "running (pid " + std::to_string(child) + ", step 0 of 8 logged)");
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  CHECK(sw::inspect_point(dir, 8, true).state == sw::PointState::Partial);  // gone: the lock is stale
}

TEST_CASE("sweep latest checkpoint: the pointer, else the newest complete step folder", "[sweep]") {
  TempDir tmp("sweep_latest");
  const std::string dir = tmp / "run";
  CHECK(sw::latest_checkpoint_step(dir) == 0);
  checkpoint(dir, 2, false);
  checkpoint(dir, 10, false);
  fs::create_directories(dir + "/checkpoints/step-12");  // no manifest: incomplete
  CHECK(sw::latest_checkpoint_step(dir) == 10);
  std::ofstream(dir + "/checkpoints/latest") << "step-2\n";
  CHECK(sw::latest_checkpoint_step(dir) == 2);
}

TEST_CASE("sweep result: final values, throughput without the first window, wall time", "[sweep]") {
  TempDir tmp("sweep_result");
  const std::string dir = tmp / "run";
  fs::create_directories(dir);
  append_record(dir, train_record(2, 5.0, 100, 10));   // first window: start-up, left out
  append_record(dir, train_record(4, 4.5, 200, 100));  // 100 tokens in 1 s
  append_record(dir, eval_record(4, 9.0, 9.0));        // not the final step
  append_record(dir, train_record(6, 4.2, 500, 100));  // 300 tokens in 3 s
  append_record(dir, eval_record(6, 3.0, 4.0));
  checkpoint(dir, 6);
  sw::record_attempt(dir, {"t0", 10.0, 143, false, "a"});
  sw::record_attempt(dir, {"t1", 5.5, 0, true, "b"});
  sw::Point p;
  p.name = "x";
  sw::PointConfig c;
  c.config.train.steps = 6;
  c.config.data.val = {{"a", {}}, {"b", {}}};
  c.params.total = 1234;
  const sw::PointResult r = sw::collect_result(p, c, dir, {});
  CHECK(r.status.state == sw::PointState::Done);
  CHECK(r.params == 1234);
  CHECK(r.tokens == 500);
  CHECK(*r.train_loss == 4.2);
  REQUIRE(r.val.size() == 2);
  CHECK(r.val.at("a").loss == 3.0);
  REQUIRE(r.val_average);
  CHECK(r.val_average->loss == Approx((3.0 * 100 + 4.0 * 300) / 400));  // weighted by tokens
  CHECK(r.val_average->ppl == Approx(std::exp(r.val_average->loss)));
  CHECK(*r.tokens_per_s == Approx(100.0));  // 400 tokens in 4 s; the 10 tok/s start-up window left out
  CHECK_FALSE(r.mfu.has_value());           // CPU records have no MFU
  CHECK(*r.wall_s == Approx(15.5));         // both attempts
  // Only the chosen sets: the average is theirs.
  const sw::PointResult only_a = sw::collect_result(p, c, dir, {"a"});
  CHECK(only_a.val.size() == 1);
  CHECK(only_a.val_average->loss == 3.0);
  CHECK(*only_a.metric("val_ppl/a") == Approx(std::exp(3.0)));
  CHECK_FALSE(only_a.metric("val_loss/b").has_value());
}
