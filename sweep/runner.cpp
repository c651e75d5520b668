#include "sweep/runner.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "sweep/child_process.h"
#include "sweep/point_config.h"
#include "sweep/point_status.h"
#include "sweep/points.h"
#include "sweep/points_table.h"

namespace fs = std::filesystem;

namespace moda::sweep {

std::string last_lines(const std::string& path, size_t n) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > n) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) out += "    " + l + "\n";
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kCannotStart = 127;  // recorded as the exit status when the program cannot start (as a shell does)

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string join(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += (s.empty() ? "" : " ") + w;
  return s;
}

// The config file each child reads: the manifest's base file, or the inline base written once
// into the sweep folder.
std::string base_config_file(const Manifest& m) {
  if (!m.base_path.empty()) return m.base_path;
  const std::string path = m.output + "/base_config.json";
  fs::create_directories(m.output);
  write_file_atomically(path, [&](std::ostream& out) { out << m.base.dump(2) << "\n"; });
  return path;
}

struct Running {
  size_t index = 0;
  Clock::time_point start;
  std::string started_at, command;
  bool resumed = false;
};

class Scheduler {
 public:
  Scheduler(const Plan& plan, const RunOptions& o)
      : plan_(plan), m_(plan.manifest), opts_(o), points_(plan.points), configs_(plan.configs) {}

  // Runs the queued point indices; returns how many did not end done.
  size_t run(std::deque<size_t> queue) {
    const std::string exe = self_executable(), base = base_config_file(m_);
    install_stop_handlers();
    int signals_passed = 0;
    size_t not_done = 0;
    // After a signal nothing new starts: the loop only waits for the running points.
    while (!running_.empty() || (!queue.empty() && stop_count() == 0)) {
      if (stop_count() > signals_passed) {  // pass each signal on once (a second makes train exit now)
        if (signals_passed == 0)
          spdlog::warn(
              "signal {}: stopping {} running point(s) at their next step; nothing new starts; "
              "run again to resume",
              stop_requested(), running_.size());
        for (const auto& [pid, r] : running_) ::kill(pid, SIGTERM);
        signals_passed = stop_count();
      }
      while (signals_passed == 0 && !queue.empty() && running_.size() < static_cast<size_t>(opts_.parallel)) {
        if (!launch(queue.front(), exe, base)) ++not_done;
        queue.pop_front();
      }
      const Exited e = poll_any_child();
      if (e.pid == 0) {
        usleep(100 * 1000);
        continue;
      }
      auto it = running_.find(e.pid);
      if (it == running_.end()) continue;
      if (!finish(it->second, e.code)) ++not_done;
      running_.erase(it);
    }
    if (signals_passed > 0) {
      if (!queue.empty()) spdlog::warn("{} point(s) not started because of the signal", queue.size());
      not_done += queue.size();
    }
    return not_done;
  }

 private:
  // Starts point i; false (the point failed, the others go on) when its program cannot start.
  bool launch(size_t i, const std::string& exe, const std::string& base) {
    const std::string dir = plan_.run_dir(i);
    fs::create_directories(dir);
    const PointStatus st = plan_.status(i);
    std::vector<std::string> argv = opts_.launcher;
    for (const std::string& w : {exe, std::string("train"), std::string("--config"), base}) argv.push_back(w);
    for (const auto& o : configs_[i].overrides) argv.insert(argv.end(), {"--set", o});
    argv.insert(argv.end(), {"--run-dir", dir});
    Running r{i, Clock::now(), utc_now(), "", st.checkpoint_step > 0};
    if (r.resumed) argv.push_back("--resume");
    r.command = join(argv);
    const std::string log = dir + "/train.log";
    {
      std::ofstream header(log, std::ios::app);
      header << "=== moda sweep " << r.started_at << ": " << r.command << "\n";
    }
    pid_t pid = 0;
    try {
      pid = spawn_logged(argv, log);
    } catch (const Error& e) {
      record_attempt(dir, {r.started_at, 0, kCannotStart, r.resumed, r.command});
      spdlog::error("[{}/{}] {} failed: {}", i + 1, points_.size(), points_[i].name, e.what());
      return false;
    }
    spdlog::info("[{}/{}] {} {}{} (log {})", i + 1, points_.size(), r.resumed ? "resume" : "start", points_[i].name,
                 r.resumed ? " from step " + std::to_string(st.checkpoint_step) : "", log);
    running_[pid] = r;
    return true;
  }

  // Records the attempt and reports how it ended; true when the point is done.
  bool finish(const Running& r, int code) {
    const Point& p = points_[r.index];
    const std::string dir = plan_.run_dir(r.index);
    const double seconds = std::chrono::duration<double>(Clock::now() - r.start).count();
    record_attempt(dir, {r.started_at, seconds, code, r.resumed, r.command});
    const PointStatus st = plan_.status(r.index);
    const std::string tag = fmt::format("[{}/{}] {}", r.index + 1, points_.size(), p.name);
    if (st.state == PointState::Done) {
      spdlog::info("{} done in {:.1f} s", tag, seconds);
      return true;
    }
    if (stop_count() > 0) {  // we asked it to stop (one killed during start-up exits 143, not 0)
      spdlog::warn("{} stopped (exit status {}): {}", tag, code, st.describe());
      return false;
    }
    spdlog::error("{} failed: exit status {}{} after {:.1f} s; last lines of {}/train.log:\n{}", tag, code,
                  code == 0 ? " but the run is not complete (" + st.describe() + ")" : "", seconds, dir,
                  last_lines(dir + "/train.log", 12));
    return false;
  }

  const Plan& plan_;
  const Manifest& m_;
  const RunOptions& opts_;
  const std::vector<Point>& points_;
  const std::vector<PointConfig>& configs_;
  std::map<pid_t, Running> running_;
};

}  // namespace

int run_sweep(const Plan& plan, const RunOptions& opts) {
  const Manifest& m = plan.manifest;
  const auto& points = plan.points;
  std::vector<PointStatus> statuses = plan.statuses();
  if (opts.dry_run) {
    std::printf("sweep %s: %zu points, run folders under %s\n%s", m.name.c_str(), points.size(), m.runs_dir().c_str(),
                format_points_table(m, points, plan.configs, &statuses).c_str());
    for (const auto& missing : missing_data_files(apply_overrides(m.base, plan.configs.front().overrides)))
      std::printf("note: %s (a run would fail here)\n", missing.c_str());
    return 0;
  }
  std::deque<size_t> queue;
  size_t failed = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    const std::string tag = fmt::format("[{}/{}] {}", i + 1, points.size(), points[i].name);
    if (statuses[i].state == PointState::Done) {
      spdlog::info("{} done already: skipped", tag);
    } else if (statuses[i].state == PointState::Running) {
      ++failed;  // its own process will finish it; a second writer would be refused
      spdlog::warn("{}: {} (another sweep or moda train): left alone", tag, statuses[i].describe());
    } else if (statuses[i].state == PointState::Stale) {
      ++failed;  // training over it would mix two experiments in one folder
      spdlog::error("{}: {} in {}; move the folder away to train the point again, or restore the manifest", tag,
                    statuses[i].describe(), plan.run_dir(i));
    } else if (statuses[i].state == PointState::NoFinalEval) {
      ++failed;  // `train --resume` would have nothing left to do
      spdlog::error("{}: {} in {}; evaluate it with `moda eval`, or remove the folder to train it again", tag,
                    statuses[i].describe(), plan.run_dir(i));
    } else {
      queue.push_back(i);
    }
  }
  spdlog::info("sweep {}: {} points, {} to train, {} at a time", m.name, points.size(), queue.size(), opts.parallel);
  failed += Scheduler(plan, opts).run(queue);
  statuses = plan.statuses();
  std::printf("%s", format_points_table(m, points, plan.configs, &statuses).c_str());
  if (failed > 0) spdlog::error("sweep {}: {} of {} points not done", m.name, failed, points.size());
  return failed > 0 ? 1 : 0;
}

}  // namespace moda::sweep
