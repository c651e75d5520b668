#include "distributed/checkpoint.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_config.h"
#include "distributed/sharded_checkpoint.h"

namespace moda {
namespace fs = std::filesystem;

static constexpr const char* kManifest = "manifest.json";
static const char* const kFiles[] = {"model.safetensors", "optimizer.safetensors", "state.json"};

static std::string step_name(int64_t step) { return "step-" + std::to_string(step); }

std::string sha256_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  MODA_CHECK(f, "cannot open '", path, "' to compute its SHA-256: ", std::strerror(errno));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(f, std::fclose);
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  MODA_CHECK(ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1, "OpenSSL: cannot start SHA-256");
  std::vector<unsigned char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0)
    MODA_CHECK(EVP_DigestUpdate(ctx.get(), buf.data(), n) == 1, "OpenSSL: SHA-256 update failed");
  MODA_CHECK(!std::ferror(f), "error reading '", path, "' to compute its SHA-256");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  MODA_CHECK(EVP_DigestFinal_ex(ctx.get(), digest, &len) == 1, "OpenSSL: SHA-256 final failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += {hex[digest[i] >> 4], hex[digest[i] & 15]};
  return out;
}

// Step folders "step-N" under root (temporaries such as step-N.tmp.PID excluded), by step.
static std::vector<std::pair<int64_t, fs::path>> step_folders(const fs::path& root) {
  std::vector<std::pair<int64_t, fs::path>> steps;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return steps;
  for (auto& e : fs::directory_iterator(root)) {
    std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("step-", 0) != 0 || n.size() == 5 || n.size() > 5 + 18 ||
        n.find_first_not_of("0123456789", 5) != std::string::npos)
      continue;
    steps.emplace_back(std::stoll(n.substr(5)), e.path());
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

// Keeps `just_written` and the newest keep - 1 other step folders; never touches `latest`,
// which already names `just_written`. With `deferred`, each folder to go is only renamed out of
// the way (see commit_checkpoint_folder) and listed there.
static void prune(const fs::path& root, int keep, const fs::path& just_written, std::vector<std::string>* deferred) {
  if (keep <= 0) return;
  auto steps = step_folders(root);
  std::erase_if(steps, [&](const auto& s) { return s.second.filename() == just_written.filename(); });
  const size_t others = static_cast<size_t>(keep - 1);
  for (size_t i = 0; i + others < steps.size(); ++i) {
    const fs::path& doomed = steps[i].second;
    if (!deferred) {
      fs::remove_all(doomed);
      continue;
    }
    const fs::path aside = checkpoint_temp_folder(root.parent_path().string(), steps[i].first, ::getpid());
    rename_atomically(doomed.string(), aside.string());
    deferred->push_back(aside.string());
  }
}

static void log_cleanup(const fs::path& root) {
  for (const auto& action : remove_stale_temporaries(root.string()))
    spdlog::warn("checkpoints: {} (left by an interrupted save)", action);
}

nlohmann::json file_record(const std::string& path) {
  return {{"bytes", fs::file_size(path)}, {"sha256", sha256_file(path)}};
}

std::string checkpoint_temp_folder(const std::string& run_dir, int64_t step, long pid) {
  return (fs::path(run_dir) / "checkpoints" / (step_name(step) + ".tmp." + std::to_string(pid))).string();
}

std::string begin_checkpoint_folder(const std::string& run_dir, int64_t step, long pid) {
  fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  log_cleanup(root);
  fs::path tmp = checkpoint_temp_folder(run_dir, step, pid);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  return tmp.string();
}

std::string commit_checkpoint_folder(const std::string& run_dir, int64_t step, const std::string& tmp_dir,
                                     const nlohmann::json& manifest, int keep, std::vector<std::string>* pruned) {
  fs::path root = fs::path(run_dir) / "checkpoints", tmp(tmp_dir);
  fs::path final_dir = root / step_name(step);
  try {
    // The manifest is written last: its presence marks the folder complete.
    write_file_atomically((tmp / kManifest).string(), [&](std::ostream& out) { out << manifest.dump(2) << "\n"; });
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
  prune(root, keep, final_dir, pruned);
  return final_dir.string();
}

nlohmann::json write_checkpoint_files(const std::string& tmp_dir, int64_t step, const Checkpoint& ckpt) {
  const fs::path tmp(tmp_dir);
  nlohmann::json manifest = {{"format", kCheckpointFormat}, {"step", step}, {"files", nlohmann::json::object()}};
  try {
    save_safetensors((tmp / "model.safetensors").string(), ckpt.model,
                     {{"format", "moda"}, {"step", std::to_string(step)}});
    save_safetensors((tmp / "optimizer.safetensors").string(), ckpt.optimizer);
    write_file_atomically((tmp / "state.json").string(), [&](std::ostream& out) { out << ckpt.state.dump(2) << "\n"; });
    for (const char* name : kFiles) manifest["files"][name] = file_record((tmp / name).string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return manifest;
}

std::string save_checkpoint(const std::string& run_dir, int64_t step, const Checkpoint& ckpt, int keep) {
  const std::string tmp = begin_checkpoint_folder(run_dir, step, ::getpid());
  return commit_checkpoint_folder(run_dir, step, tmp, write_checkpoint_files(tmp, step, ckpt), keep);
}

nlohmann::json read_checkpoint_manifest(const std::string& dir) {
  fs::path path = fs::path(dir) / kManifest;
  nlohmann::json m = parse_json_file(path.string(), "checkpoint manifest");
  const std::string where = path.string();
  MODA_CHECK(m.is_object() && m.contains("format") && m["format"].is_string(), where, ": missing field 'format'");
  const std::string format = m["format"].get<std::string>();
  MODA_CHECK(format == kCheckpointFormat || format == kShardedCheckpointFormat, where, ": format ",
             json_excerpt(m["format"]), " is not ", kCheckpointFormat, " or ", kShardedCheckpointFormat);
  MODA_CHECK(m.contains("files") && m["files"].is_object(), where, ": field 'files' is missing or not an object");
  if (format == kCheckpointFormat)
    for (const char* name : kFiles) MODA_CHECK(m["files"].contains(name), where, ": files: no entry for '", name, "'");
  for (const auto& [name, e] : m["files"].items()) {
    MODA_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." && name != "..", where, ": files: '",
               name, "' is not a file name");
    MODA_CHECK(e.is_object() && e.contains("bytes") && e["bytes"].is_number_unsigned(), where, ": files.", name,
               ".bytes: missing or not a non-negative integer");
    MODA_CHECK(e.contains("sha256") && e["sha256"].is_string() && e["sha256"].get<std::string>().size() == 64, where,
               ": files.", name, ".sha256: missing or not 64 hex digits");
  }
  return m;
}

void verify_checkpoint_file(const std::string& dir, const nlohmann::json& manifest, const std::string& name) {
  fs::path p = fs::path(dir) / name;
  MODA_CHECK(manifest.at("files").contains(name), (fs::path(dir) / kManifest).string(), ": files: no entry for '", name,
             "'");
  std::string want = manifest["files"][name]["sha256"].get<std::string>(), have = sha256_file(p.string());
  MODA_CHECK(have == want, p.string(), ": SHA-256 ", have, " does not match ", want,
             " recorded in manifest.json: the file is corrupt (changed after it was saved)");
}

std::string checkpoint_incomplete_reason(const std::string& dir_str) {
  fs::path dir(dir_str);
  if (!fs::exists(dir / kManifest)) return "no " + std::string(kManifest) + " (the save did not finish)";
  nlohmann::json m;
  try {
    m = read_checkpoint_manifest(dir.string());
  } catch (const Error& e) {
    return e.what();
  }
  for (const auto& [name, entry] : m["files"].items()) {
    fs::path p = dir / name;
    std::error_code ec;
    uint64_t have = fs::file_size(p, ec);
    if (ec) return p.string() + " is missing";
    uint64_t want = entry["bytes"].get<uint64_t>();
    if (have != want)
      return p.string() + " has " + std::to_string(have) + " bytes, the manifest says " + std::to_string(want);
  }
  return "";
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  fs::path root = fs::path(run_dir) / "checkpoints";
  log_cleanup(root);
  fs::path pointer = root / "latest";
  if (!fs::exists(pointer)) {
    auto steps = step_folders(root);
    if (steps.empty()) return std::nullopt;
    std::string reasons;
    for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
      std::string why = checkpoint_incomplete_reason(it->second.string());
      if (why.empty()) {
        spdlog::warn("{} is missing: using the newest complete checkpoint {}", pointer.string(), it->second.string());
        return it->second.string();
      }
      reasons += "\n  " + it->second.filename().string() + ": " + why;
    }
    MODA_FAIL(root.string(), " holds step folders but no 'latest' pointer and no complete checkpoint:", reasons,
              "\nremove these folders or use another run folder");
  }
  std::ifstream in(pointer);
  std::string name;
  std::getline(in, name);
  fs::path dir = root / name;
  MODA_CHECK(!name.empty() && name.find('/') == std::string::npos && fs::is_directory(dir), pointer.string(),
             " names '", name, "', which is not a checkpoint folder");
  return dir.string();
}

LoadedCheckpoint load_checkpoint(const std::string& path, bool with_optimizer, bool verify) {
  MODA_CHECK(fs::exists(path), "checkpoint path '", path, "' does not exist");
  std::string dir = path;
  if (!fs::exists(fs::path(path) / "model.safetensors") && !fs::exists(fs::path(path) / kManifest)) {
    auto latest = latest_checkpoint(path);
    MODA_CHECK(latest, "'", path, "' is neither a checkpoint folder (no model.safetensors or manifest.json) nor a ",
               "run folder with checkpoints/latest");
    dir = *latest;
  }
  if (verify || fs::exists(fs::path(dir) / kManifest)) {
    std::string why = checkpoint_incomplete_reason(dir);
    MODA_CHECK(why.empty(), "checkpoint ", dir, " is not complete: ", why,
               verify ? " (a checkpoint written before checksums existed loads with verification off)" : "");
  }
  if (is_sharded_checkpoint(dir)) return load_sharded_as_one(dir, with_optimizer, verify);
  if (verify) {
    nlohmann::json m = read_checkpoint_manifest(dir);
    for (const char* name : kFiles) {
      if (!with_optimizer && std::string(name) == "optimizer.safetensors") continue;
      verify_checkpoint_file(dir, m, name);
    }
  }
  LoadedCheckpoint out;
  out.dir = dir;
  out.model = load_safetensors((fs::path(dir) / "model.safetensors").string());
  if (with_optimizer) out.optimizer = load_safetensors((fs::path(dir) / "optimizer.safetensors").string());
  out.state = parse_json_file((fs::path(dir) / "state.json").string(), "checkpoint state");
  return out;
}

}  // namespace moda
