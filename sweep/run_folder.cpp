#include "sweep/run_folder.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_config.h"

namespace fs = std::filesystem;

namespace moda::sweep {

std::vector<nlohmann::json> read_metrics_records(const std::string& run_dir) {
  std::vector<nlohmann::json> records;
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      nlohmann::json r = parse_json_text(line, "metrics record");
      if (r.is_object() && r.contains("step") && r["step"].is_number_integer()) records.push_back(std::move(r));
    } catch (const Error&) {
      // a line cut short by a kill; the trainer drops it on --resume too
    }
  }
  return records;
}

static int64_t step_of(const std::string& folder_name) {  // "step-42" -> 42, else -1
  if (folder_name.rfind("step-", 0) != 0 || folder_name.size() == 5) return -1;
  int64_t step = 0;
  for (size_t i = 5; i < folder_name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(folder_name[i]))) return -1;
    step = step * 10 + (folder_name[i] - '0');
  }
  return step;
}

int64_t latest_checkpoint_step(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  std::ifstream latest(dir / "latest");
  std::string name;
  if (latest >> name && step_of(name) >= 0) return step_of(name);
  int64_t newest = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && fs::exists(e.path() / "manifest.json"))
      newest = std::max(newest, step_of(e.path().filename().string()));
  return newest;
}

static std::string this_host() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

// Whether /proc/PID/cmdline has `--run-dir D` (or `--run-dir=D`) with D the same folder as `dir`.
static bool trains_into(long pid, const fs::path& dir) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string a; std::getline(in, a, '\0');) args.push_back(a);
  std::error_code ec;
  const fs::path want = fs::weakly_canonical(dir, ec);
  auto same = [&](const std::string& d) { return !ec && fs::weakly_canonical(d, ec) == want; };
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--run-dir" && i + 1 < args.size() && same(args[i + 1])) return true;
    if (args[i].rfind("--run-dir=", 0) == 0 && same(args[i].substr(10))) return true;
  }
  return false;
}

long training_pid(const std::string& run_dir) {
  std::ifstream lock(run_dir + "/.lock");
  std::string host_word, host, pid_word;
  long pid = 0;
  // "host H, pid P"
  if (!(lock >> host_word >> host >> pid_word >> pid) || host_word != "host" || pid_word != "pid") return 0;
  if (!host.empty() && host.back() == ',') host.pop_back();
  if (host != this_host() || pid <= 0 || !process_is_running(pid)) return 0;
  return trains_into(pid, run_dir) ? pid : 0;
}

static std::string attempts_path(const std::string& run_dir) { return run_dir + "/sweep_attempts.json"; }

std::vector<Attempt> read_attempts(const std::string& run_dir) {
  std::vector<Attempt> out;
  if (!fs::exists(attempts_path(run_dir))) return out;
  const nlohmann::json doc = parse_json_file(attempts_path(run_dir), "sweep attempts record");
  MODA_CHECK(doc.is_object() && doc.contains("attempts") && doc["attempts"].is_array(), attempts_path(run_dir),
             ": expected {\"attempts\": [...]}");
  for (const auto& a : doc["attempts"]) {
    FieldReader r(a, attempts_path(run_dir) + ": attempt");
    Attempt at;
    at.started_at = r.get<std::string>("started_at", "");
    at.seconds = r.get<double>("seconds", 0);
    at.exit_code = r.get<int>("exit_code", 0);
    at.resumed = r.get<bool>("resumed", false);
    at.command = r.get<std::string>("command", "");
    out.push_back(at);
  }
  return out;
}

static nlohmann::json to_json(const Attempt& a) {
  return {{"started_at", a.started_at},
          {"seconds", a.seconds},
          {"exit_code", a.exit_code},
          {"resumed", a.resumed},
          {"command", a.command}};
}

void record_attempt(const std::string& run_dir, const Attempt& a) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& old : read_attempts(run_dir)) list.push_back(to_json(old));
  list.push_back(to_json(a));
  const nlohmann::json doc = {{"attempts", list}};
  write_file_atomically(attempts_path(run_dir), [&](std::ostream& out) { out << doc.dump(2) << "\n"; });
}

}  // namespace moda::sweep
