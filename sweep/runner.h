#pragma once
// `moda sweep run`: trains every point that is not done, K at a time, each as a child process
// `[LAUNCHER...] moda train --config BASE --set k=v ... --run-dir DIR [--resume]` whose output
// goes to DIR/train.log. Done points are skipped, interrupted ones resumed, failed ones reported
// while the others go on. SIGINT/SIGTERM: one SIGTERM is passed to each child (which checkpoints
// and exits), nothing new starts, and a later `run` resumes.
#include <string>
#include <vector>

#include "sweep/plan.h"

namespace moda::sweep {

struct RunOptions {
  std::vector<std::string> launcher;  // e.g. {"mpirun", "-np", "8"}; empty: the program itself
  int parallel = 1;                   // children at once
  bool dry_run = false;               // list the points, train nothing
};

// Trains the plan's points (or lists them, for a dry run). Returns the exit status: 0 when every
// point is done (or listed), 1 otherwise.
int run_sweep(const Plan& plan, const RunOptions& opts);

// The last `n` lines of a file ("" when it is missing), for failure reports.
std::string last_lines(const std::string& path, size_t n);

}  // namespace moda::sweep
