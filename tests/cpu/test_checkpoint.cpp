// Checkpoints (issue 13): SHA-256 per file verified on load, retention that never removes the
// checkpoint just written, recovery when `latest` is missing, and cleanup of interrupted saves.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "core/atomic_file.h"
#include "core/error.h"
#include "distributed/checkpoint.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using namespace moda;

using moda::testing::error_of;
using moda::testing::TempDir;

namespace {

// A checkpoint whose weights encode the step, so a test can tell which one was loaded.
Checkpoint make_checkpoint(int64_t step) {
  Tensor w = Tensor::empty({2, 3}, DType::F32, Device::cpu());
  for (int i = 0; i < 6; ++i) static_cast<float*>(w.data_ptr())[i] = float(step * 10 + i);
  Tensor m = Tensor::empty({4}, DType::F32, Device::cpu());
  for (int i = 0; i < 4; ++i) static_cast<float*>(m.data_ptr())[i] = 0.5f * float(i);
  return {{{"w", w}}, {{"m", m}}, {{"step", step}, {"tokens", step * 100}}};
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

// The pid of a process that has exited (and been reaped), so kill(pid, 0) gives ESRCH.
long dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

}  // namespace

TEST_CASE("checkpoint: SHA-256 of each file is stored and flipped bytes are an error naming the file",
          "[cpu][reliability][checkpoint]") {
  // Known answer: SHA-256("abc") from FIPS 180-2, appendix B.1.
  TempDir dir("sha");
  { std::ofstream(dir / "abc") << "abc"; }
  CHECK(sha256_file(dir / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  std::string ck = save_checkpoint(dir.path.string(), 7, make_checkpoint(7));
  auto manifest = nlohmann::json::parse(std::ifstream(fs::path(ck) / "manifest.json"));
  CHECK(manifest["format"] == "moda.checkpoint/1");
  CHECK(manifest["files"]["model.safetensors"]["sha256"].get<std::string>() ==
        sha256_file((fs::path(ck) / "model.safetensors").string()));
  CHECK(manifest["files"]["state.json"]["bytes"].get<uint64_t>() == fs::file_size(fs::path(ck) / "state.json"));

  LoadedCheckpoint ok = load_checkpoint(dir.path.string());
  CHECK(static_cast<const float*>(ok.model.tensors.at("w").data_ptr())[5] == 75.0f);
  CHECK(ok.state["tokens"] == 700);

  // Flip one byte after the safetensors header (what made `moda eval` print ppl inf).
  const std::string model = (fs::path(ck) / "model.safetensors").string();
  {
    std::fstream f(model, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-3, std::ios::end);
    char c;
    f.get(c);
    f.seekp(-3, std::ios::end);
    f.put(char(c ^ 0x40));
  }
  CHECK_THAT(error_of([&] { load_checkpoint(dir.path.string()); }),
             Catch::StartsWith(model + ": SHA-256 ") &&
                 Catch::Contains("recorded in manifest.json: the file is corrupt (changed after it was saved)"));
  CHECK_NOTHROW(load_checkpoint(dir.path.string(), true, /*verify=*/false));  // the skip option

  // A file cut short fails even unverified (sizes are always compared).
  fs::resize_file(fs::path(ck) / "optimizer.safetensors", 10);
  CHECK_THAT(error_of([&] { load_checkpoint(ck, true, false); }),
             Catch::Contains("is not complete: " + (fs::path(ck) / "optimizer.safetensors").string() +
                             " has 10 bytes, the manifest says"));
}

TEST_CASE("checkpoint: retention keeps the one just written and latest never dangles",
          "[cpu][reliability][checkpoint]") {
  TempDir dir("keep");
  const fs::path root = dir.path / "checkpoints";
  for (int64_t s : {1, 2, 3}) save_checkpoint(dir.path.string(), s, make_checkpoint(s), 2);
  CHECK(!fs::exists(root / "step-1"));
  CHECK(fs::exists(root / "step-2"));
  CHECK(fs::exists(root / "step-3"));
  CHECK(read_text(root / "latest") == "step-3");

  // Issue 13's case: `latest` deleted, then a save of a lower step (a new run into the folder).
  fs::remove(root / "latest");
  std::string ck = save_checkpoint(dir.path.string(), 1, make_checkpoint(1), 1);
  CHECK(fs::exists(ck));
  CHECK(read_text(root / "latest") == "step-1");
  CHECK(*latest_checkpoint(dir.path.string()) == ck);
  CHECK(!fs::exists(root / "step-3"));  // keep = 1: only the one just written
}

TEST_CASE("checkpoint: a deferred prune renames old folders aside for the caller to delete",
          "[cpu][reliability][checkpoint]") {
  TempDir dir("deferred_prune");
  const std::string run = dir.path.string();
  const fs::path root = dir.path / "checkpoints";
  save_checkpoint(run, 1, make_checkpoint(1), 1);
  const std::string tmp = begin_checkpoint_folder(run, 2, ::getpid());
  std::vector<std::string> pruned;
  const std::string ck =
      commit_checkpoint_folder(run, 2, tmp, write_checkpoint_files(tmp, 2, make_checkpoint(2)), 1, &pruned);
  REQUIRE(pruned.size() == 1);
  CHECK(pruned[0] == checkpoint_temp_folder(run, 1, ::getpid()));
  CHECK(fs::exists(pruned[0]));          // renamed aside, not deleted: the caller deletes it
  CHECK(!fs::exists(root / "step-1"));   // no longer a checkpoint
  CHECK(*latest_checkpoint(run) == ck);  // this process is alive: its folder is left alone
  CHECK(fs::exists(pruned[0]));
  // The process that would have deleted it died: the next start removes it as a leftover.
  const std::string orphan = checkpoint_temp_folder(run, 1, 999999999);
  fs::rename(pruned[0], orphan);
  CHECK(*latest_checkpoint(run) == ck);
  CHECK(!fs::exists(orphan));
}

TEST_CASE("checkpoint: without latest the newest complete step folder is used, or the run is refused",
          "[cpu][reliability][checkpoint]") {
  TempDir dir("recover");
  const fs::path root = dir.path / "checkpoints";
  CHECK(!latest_checkpoint(dir.path.string()));  // a fresh run folder
  for (int64_t s : {4, 8}) save_checkpoint(dir.path.string(), s, make_checkpoint(s));
  fs::remove(root / "latest");
  CHECK(*latest_checkpoint(dir.path.string()) == (root / "step-8").string());

  fs::remove(root / "step-8" / "manifest.json");  // step-8 incomplete: step-4 is the newest complete
  CHECK(checkpoint_incomplete_reason((root / "step-8").string()) == "no manifest.json (the save did not finish)");
  CHECK(*latest_checkpoint(dir.path.string()) == (root / "step-4").string());
  LoadedCheckpoint ck = load_checkpoint(dir.path.string());
  CHECK(ck.state["step"] == 4);

  fs::remove(root / "step-4" / "state.json");
  CHECK_THAT(error_of([&] { latest_checkpoint(dir.path.string()); }),
             Catch::Contains("holds step folders but no 'latest' pointer and no complete checkpoint") &&
                 Catch::Contains("step-8: no manifest.json") &&
                 Catch::Contains("step-4: " + (root / "step-4" / "state.json").string() + " is missing"));

  // A pointer naming a folder that is gone.
  { std::ofstream(root / "latest") << "step-99\n"; }
  CHECK_THAT(error_of([&] { latest_checkpoint(dir.path.string()); }),
             Catch::Contains("names 'step-99', which is not a checkpoint folder"));
}

TEST_CASE("checkpoint: leftovers of interrupted saves are removed when their process is gone",
          "[cpu][reliability][checkpoint]") {
  TempDir dir("stale");
  const fs::path root = dir.path / "checkpoints";
  save_checkpoint(dir.path.string(), 5, make_checkpoint(5));
  const std::string dead = std::to_string(dead_pid()), mine = std::to_string(::getpid());
  CHECK(!process_is_running(std::stol(dead)));
  CHECK(process_is_running(::getpid()));
  {  // A zombie (ended, not reaped: an MPI rank killed with its mpirun, in a container whose PID 1
     // reaps late) is not running: its temporaries are leftovers too.
    const pid_t zombie = ::fork();
    if (zombie == 0) ::_exit(0);
    REQUIRE(zombie > 0);
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(zombie), &info, WEXITED | WNOWAIT) == 0);  // ended, still a zombie
    CHECK(::kill(zombie, 0) == 0);
    CHECK(!process_is_running(zombie));
    ::waitpid(zombie, nullptr, 0);
  }
  fs::create_directories(root / ("step-6.tmp." + dead));          // a save killed while writing
  { std::ofstream(root / (".latest.tmp." + dead)) << "step-6"; }  // the pointer's temporary file
  fs::create_directories(root / ("step-7.tmp." + mine));          // a save of this (running) process
  // A swap killed between its renames: step-5 moved to step-5.old.PID, the new one not yet in place.
  fs::rename(root / "step-5", root / ("step-5.old." + dead));
  { std::ofstream(root / "notes.tmp.txt") << "not a temporary of ours"; }

  auto actions = remove_stale_temporaries(root.string());
  CHECK(actions.size() == 3);
  CHECK(!fs::exists(root / ("step-6.tmp." + dead)));
  CHECK(!fs::exists(root / (".latest.tmp." + dead)));
  CHECK(fs::exists(root / ("step-7.tmp." + mine)));
  CHECK(fs::exists(root / "notes.tmp.txt"));
  CHECK(fs::exists(root / "step-5" / "manifest.json"));  // restored, so `latest` is not dangling
  CHECK(load_checkpoint(dir.path.string()).state["step"] == 5);

  // save_checkpoint and latest_checkpoint clean up on their own.
  fs::create_directories(root / ("step-9.tmp." + dead));
  latest_checkpoint(dir.path.string());
  CHECK(!fs::exists(root / ("step-9.tmp." + dead)));
  fs::create_directories(root / ("step-9.tmp." + dead));
  save_checkpoint(dir.path.string(), 10, make_checkpoint(10));
  CHECK(!fs::exists(root / ("step-9.tmp." + dead)));
}

TEST_CASE("checkpoint: a state.json nested too deep is an error naming the file", "[cpu][reliability][checkpoint]") {
  TempDir dir("deepstate");
  Checkpoint c = make_checkpoint(3);
  nlohmann::json deep = 1;
  for (int i = 0; i < 100; ++i) deep = nlohmann::json::array({deep});
  c.state["loader"] = deep;
  std::string ck = save_checkpoint(dir.path.string(), 3, c);
  CHECK_THAT(error_of([&] { load_checkpoint(ck); }),
             Catch::Equals("checkpoint state file '" + (fs::path(ck) / "state.json").string() +
                           "': JSON nested deeper than the limit of 64 levels of arrays/objects"));
}
