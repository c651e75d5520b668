#pragma once
// What a sweep reads from and adds to a point's run folder (the run-folder contract of
// docs/training.md): the metrics records, the newest checkpoint's step, and the sweep's own record
// of each attempt to train the point (DIR/sweep_attempts.json: when, how long, how it ended).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moda::sweep {

// Every record of DIR/metrics.jsonl; a line that does not parse (a last line cut short by a kill)
// is skipped. A missing file gives none.
std::vector<nlohmann::json> read_metrics_records(const std::string& run_dir);

// The step of DIR/checkpoints/latest ("step-N"); without that pointer, the newest step-N folder
// holding a manifest.json (what `moda train --resume` falls back to); 0 when there is none.
int64_t latest_checkpoint_step(const std::string& run_dir);

// The pid of a live process on this host training into DIR: the one DIR/.lock names ("host H,
// pid P", written by `moda train`), when that process is still running and its command line has
// `--run-dir` naming DIR (so a stale lock whose pid was reused is not taken for a run); 0 if none.
// Reads only: taking the lock to test it could refuse a `moda train` starting at that moment.
long training_pid(const std::string& run_dir);

struct Attempt {
  std::string started_at;  // UTC, ISO 8601
  double seconds = 0;      // wall time of the child process
  int exit_code = 0;       // the child's exit status, or 128 + signal when a signal ended it
  bool resumed = false;    // started with --resume
  std::string command;     // the command line, for the record
};

std::vector<Attempt> read_attempts(const std::string& run_dir);
// Appends one attempt to DIR/sweep_attempts.json (replaced atomically).
void record_attempt(const std::string& run_dir, const Attempt& a);

}  // namespace moda::sweep
