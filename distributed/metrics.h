#pragma once
// What a run reports: <run>/metrics.jsonl (one JSON object per logged step or evaluation, the
// contract docs/training.md describes) and the throughput behind tokens/s and MFU.
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace moda {

class MetricsWriter {
 public:
  explicit MetricsWriter(std::string run_dir);
  void start_new();               // truncates metrics.jsonl (a fresh run)
  void drop_after(int64_t step);  // on resume: records past the checkpoint would repeat
  void append(const nlohmann::json& record) const;

 private:
  std::string path_;
};

// Training throughput over the steps since the last report. Time spent outside training steps
// (evaluation, checkpoints) is excluded by pause()/resume(), so tokens and seconds always cover
// the same steps.
class ThroughputMeter {
 public:
  ThroughputMeter();
  void add_tokens(int64_t tokens) { tokens_ += tokens; }
  void pause();
  void resume();
  // Tokens per second since the last take(), then starts a new window.
  double take();

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point window_start_, paused_at_;
  double paused_seconds_ = 0;
  bool paused_ = false;
  int64_t tokens_ = 0;
};

std::string format_duration(double seconds);  // "h:mm:ss"

}  // namespace moda
