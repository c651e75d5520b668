// moda checkpoint info X | moda checkpoint consolidate --checkpoint X --out DIR
// (`checkpoint export`, for other frameworks: apps/cmd_checkpoint_export.cpp)
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/exit_codes.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_config.h"
#include "distributed/checkpoint.h"
#include "distributed/run_lock.h"
#include "distributed/sharded_checkpoint.h"
#include "nn/model_config.h"

namespace moda::app {
namespace fs = std::filesystem;

namespace {

// A checkpoint folder as given, or a run folder's latest checkpoint.
std::string checkpoint_folder(const std::string& path) {
  MODA_CHECK(fs::exists(path), "checkpoint path '", path, "' does not exist");
  if (fs::exists(fs::path(path) / "manifest.json") || fs::exists(fs::path(path) / "model.safetensors")) return path;
  auto latest = latest_checkpoint(path);
  MODA_CHECK(latest, "'", path, "' is neither a checkpoint folder (no manifest.json) nor a run folder with ",
             "checkpoints/latest");
  return *latest;
}

std::string config_summary(const nlohmann::json& config) {
  const nn::ModelConfig m = nn::model_config_from_json(config.at("model"));
  const auto count = nn::count_parameters(m);
  const auto& data = config.at("data");
  const auto& train = config.at("train");
  return fmt::format(
      "{} ({}-norm), d_model {}, {} layers, {} heads, vocab {}: {:.3f}M parameters\n"
      "train       global_batch {}, micro_batch {}, steps {}, seq_len {}",
      nn::variant_name(m.variant), nn::norm_name(m.norm), m.d_model, m.n_layers, m.n_heads, m.vocab_size,
      count.total / 1e6, train.value("global_batch", int64_t(0)), train.value("micro_batch", int64_t(0)),
      train.value("steps", int64_t(0)), data.value("seq_len", int64_t(0)));
}

}  // namespace

static int run_info(const std::vector<std::string>& argv_in) {
  std::vector<std::string> argv = argv_in;  // `info X` is `info --checkpoint X`
  if (!argv.empty() && argv[0].rfind("--", 0) != 0) argv.insert(argv.begin(), "--checkpoint");
  Args args(argv, {"checkpoint"});
  const std::string dir = checkpoint_folder(args.get("checkpoint"));
  const nlohmann::json manifest = read_checkpoint_manifest(dir);
  const bool sharded = manifest["format"] == kShardedCheckpointFormat;
  nlohmann::json state;
  int world = 1;
  if (sharded) {
    const ShardedCheckpoint ck = read_sharded_checkpoint(dir);
    state = ck.state;
    world = ck.world_size;
  } else {
    state = parse_json_file((fs::path(dir) / "state.json").string(), "checkpoint state");
  }
  std::printf("checkpoint  %s\n", dir.c_str());
  std::printf("layout      %s\n", sharded ? fmt::format("sharded over {} ranks", world).c_str() : "one rank");
  std::printf("step        %lld\n", static_cast<long long>(FieldReader(state, dir).require<int64_t>("step")));
  std::printf("tokens      %lld\n", static_cast<long long>(FieldReader(state, dir).require<int64_t>("tokens")));
  if (sharded) std::printf("version     %s\n", manifest.value("program_version", std::string("?")).c_str());
  std::printf("model       %s\n", config_summary(FieldReader(state, dir).raw("config")).c_str());
  // Every file: present, the manifest's size, the manifest's SHA-256. All are checked and listed
  // before the verdict, so one run names every bad file.
  uint64_t total = 0;
  std::string bad;
  std::printf("files:\n");
  for (const auto& [name, entry] : manifest["files"].items()) {
    const fs::path p = fs::path(dir) / name;
    std::string status = "sha256 ok", problem;
    std::error_code ec;
    const uint64_t bytes = fs::file_size(p, ec), want = entry["bytes"].get<uint64_t>();
    if (ec) {
      status = "MISSING";
      problem = p.string() + " is missing";
    } else if (bytes != want) {
      status = "WRONG SIZE";
      problem = fmt::format("{} has {} bytes, the manifest says {}", p.string(), bytes, want);
    } else {
      try {
        verify_checkpoint_file(dir, manifest, name);
      } catch (const Error& e) {
        status = "SHA-256 MISMATCH";
        problem = e.what();
      }
    }
    if (!problem.empty()) bad += "\n  " + problem;
    total += ec ? 0 : bytes;
    std::printf("  %-36s %14s bytes  %s\n", name.c_str(), ec ? "-" : std::to_string(bytes).c_str(), status.c_str());
  }
  std::printf("total       %llu bytes\n", static_cast<unsigned long long>(total));
  MODA_CHECK(bad.empty(), "checkpoint ", dir, " does not match its manifest:", bad);
  // The files are the ones saved; their contents must also be what the manifest describes.
  if (sharded) consolidate_sharded(read_sharded_checkpoint(dir), /*with_optimizer=*/true, /*verify=*/false);
  std::printf("verified    every file matches manifest.json\n");
  return 0;
}

static int run_consolidate(const std::vector<std::string>& argv) {
  Args args(argv, {"checkpoint", "out"});
  const std::string from = args.get("checkpoint"), out = args.get("out");
  std::error_code ec;
  MODA_CHECK(!fs::exists(out) || (fs::is_directory(out) && fs::is_empty(out, ec)), "--out '", out,
             "' exists and is not an empty folder; consolidate writes a new run folder and overwrites nothing");
  LoadedCheckpoint ck = load_checkpoint(from);  // hashes verified; a sharded one consolidated in memory
  const int world = checkpoint_world_size(ck.dir);
  const int64_t step = FieldReader(ck.state, ck.dir).require<int64_t>("step");
  Checkpoint whole;
  for (auto& [name, t] : ck.model.tensors) whole.model.emplace_back(name, t);
  for (auto& [name, t] : ck.optimizer.tensors) whole.optimizer.emplace_back(name, t);
  whole.state = ck.state;
  RunFolderLock lock(out);  // creates the folder
  write_file_atomically((fs::path(out) / "config.json").string(),
                        [&](std::ostream& o) { o << ck.state.at("config").dump(2) << "\n"; });
  const std::string dir = save_checkpoint(out, step, whole);
  std::printf("consolidated %s (step %lld, %d rank(s)) into %s\n", ck.dir.c_str(), static_cast<long long>(step), world,
              dir.c_str());
  return 0;
}

constexpr const char* kInfoUsage =
    R"(usage: moda checkpoint info X | --checkpoint X
  Prints a checkpoint's step, tokens, layout (world size), model and batch config, and each file
  with its size, and verifies every file against manifest.json (size and SHA-256; a sharded
  checkpoint's tensors against its layout too). Exit status 1 naming every bad file if one is
  missing, truncated or altered.
  X                   a checkpoint folder (checkpoints/step-N) or a run folder (its latest)
  --checkpoint X      the same, as an option (as `moda eval` and `consolidate` take it)
)";

constexpr const char* kConsolidateUsage =
    R"(usage: moda checkpoint consolidate --checkpoint X --out DIR
  Writes checkpoint X (sharded over any number of ranks, or one rank's) as one unsharded
  checkpoint in the one-rank layout: DIR is a new run folder holding config.json and
  checkpoints/step-N/, which `moda eval --checkpoint DIR` and `moda train --resume --run-dir DIR`
  load. Every file of X is verified first; DIR must not exist or be empty.
  --checkpoint X      a checkpoint folder or a run folder (its latest checkpoint)
  --out DIR           the new run folder
)";

MODA_COMMAND("checkpoint info", "a checkpoint's step, config, sizes; verifies every file: X", kInfoUsage, run_info);
MODA_COMMAND("checkpoint consolidate", "one unsharded checkpoint from a sharded one: --checkpoint X --out DIR",
             kConsolidateUsage, run_consolidate);

}  // namespace moda::app
