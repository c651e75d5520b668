#include "distributed/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"

namespace moda {
namespace fs = std::filesystem;

static std::string step_name(int64_t step) { return "step-" + std::to_string(step); }

static void prune(const fs::path& root, int keep) {
  if (keep <= 0) return;
  std::vector<std::pair<int64_t, fs::path>> steps;
  for (auto& e : fs::directory_iterator(root)) {
    std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("step-", 0) != 0 || n.find('.') != std::string::npos) continue;
    try {
      steps.emplace_back(std::stoll(n.substr(5)), e.path());
    } catch (const std::exception&) {
    }
  }
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + keep < steps.size(); ++i) fs::remove_all(steps[i].second);
}

std::string save_checkpoint(const std::string& run_dir, int64_t step, const Checkpoint& ckpt, int keep) {
  fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  fs::path final_dir = root / step_name(step);
  fs::path tmp = root / (step_name(step) + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    save_safetensors((tmp / "model.safetensors").string(), ckpt.model,
                     {{"format", "moda"}, {"step", std::to_string(step)}});
    save_safetensors((tmp / "optimizer.safetensors").string(), ckpt.optimizer);
    write_file_atomically((tmp / "state.json").string(), [&](std::ostream& out) { out << ckpt.state.dump(2) << "\n"; });
    if (fs::exists(final_dir)) {  // re-saving a step (e.g. after a resume): swap, then drop the old one
      fs::path old = root / (step_name(step) + ".old." + std::to_string(::getpid()));
      rename_atomically(final_dir.string(), old.string());
      rename_atomically(tmp.string(), final_dir.string());
      fs::remove_all(old);
    } else {
      rename_atomically(tmp.string(), final_dir.string());
    }
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
  write_file_atomically((root / "latest").string(), [&](std::ostream& out) { out << step_name(step) << "\n"; });
  prune(root, keep);
  return final_dir.string();
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  fs::path pointer = fs::path(run_dir) / "checkpoints" / "latest";
  if (!fs::exists(pointer)) return std::nullopt;
  std::ifstream in(pointer);
  std::string name;
  std::getline(in, name);
  fs::path dir = fs::path(run_dir) / "checkpoints" / name;
  MODA_CHECK(!name.empty() && fs::is_directory(dir), pointer.string(), " names '", name,
             "', which is not a checkpoint folder");
  return dir.string();
}

LoadedCheckpoint load_checkpoint(const std::string& path, bool with_optimizer) {
  MODA_CHECK(fs::exists(path), "checkpoint path '", path, "' does not exist");
  std::string dir = path;
  if (!fs::exists(fs::path(path) / "model.safetensors")) {
    auto latest = latest_checkpoint(path);
    MODA_CHECK(latest, "'", path, "' is neither a checkpoint folder (no model.safetensors) nor a run folder ",
               "with checkpoints/latest");
    dir = *latest;
  }
  LoadedCheckpoint out;
  out.dir = dir;
  out.model = load_safetensors((fs::path(dir) / "model.safetensors").string());
  if (with_optimizer) out.optimizer = load_safetensors((fs::path(dir) / "optimizer.safetensors").string());
  fs::path state = fs::path(dir) / "state.json";
  std::ifstream in(state);
  MODA_CHECK(in, "cannot open '", state.string(), "'");
  try {
    out.state = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    MODA_FAIL(state.string(), ": not valid JSON: ", e.what());
  }
  return out;
}

}  // namespace moda
