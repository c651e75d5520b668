#include "distributed/metrics.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_config.h"

namespace moda {
namespace fs = std::filesystem;

MetricsWriter::MetricsWriter(std::string run_dir) : path_((fs::path(run_dir) / "metrics.jsonl").string()) {}

void MetricsWriter::start_new() {
  std::ofstream out(path_, std::ios::trunc);
  MODA_CHECK(out.good(), "cannot create ", path_);
}

void MetricsWriter::drop_after(int64_t step) {
  std::ifstream in(path_);
  std::string kept, line;
  while (std::getline(in, line)) {
    try {
      if (parse_json_text(line, path_).value("step", int64_t(0)) > step) continue;
    } catch (const std::exception&) {
      continue;  // a line cut short by the interruption
    }
    kept += line + "\n";
  }
  write_file_atomically(path_, [&](std::ostream& out) { out << kept; });
}

void MetricsWriter::append(const nlohmann::json& record) const {
  std::ofstream out(path_, std::ios::app);
  out << record.dump() << "\n";
  out.flush();
  MODA_CHECK(out.good(), "cannot append to ", path_, " (disk full?)");
}

ThroughputMeter::ThroughputMeter() : window_start_(Clock::now()) {}

void ThroughputMeter::pause() {
  if (paused_) return;
  paused_ = true;
  paused_at_ = Clock::now();
}

void ThroughputMeter::resume() {
  if (!paused_) return;
  paused_ = false;
  paused_seconds_ += std::chrono::duration<double>(Clock::now() - paused_at_).count();
}

double ThroughputMeter::take() {
  resume();
  const auto now = Clock::now();
  const double seconds = std::chrono::duration<double>(now - window_start_).count() - paused_seconds_;
  const double rate = static_cast<double>(tokens_) / std::max(seconds, 1e-9);
  window_start_ = now;
  paused_seconds_ = 0;
  tokens_ = 0;
  return rate;
}

std::string format_duration(double seconds) {
  const int s = static_cast<int>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

}  // namespace moda
