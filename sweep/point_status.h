#pragma once
// Where a point stands, read from its run folder alone (so `status` and a second `run` agree with
// whatever happened to the previous one):
//   done         the final step's checkpoint is `latest` and, when the config has validation sets,
//                metrics.jsonl holds the final step's evaluation; or the folder has no checkpoint
//                left but metrics.jsonl logs the final step (and its evaluation): a finished point
//                whose checkpoints were removed, e.g. to bring its results home from a GPU host
//   failed       not done, and the last attempt the sweep recorded ended with a non-zero status
//   partial      a checkpoint before the final step (an interrupted run: `run` resumes it)
//   no_final_eval the final checkpoint without the final evaluation (the evaluation failed or was
//                killed): `moda train --resume` has nothing left to do, so `run` reports it
//   not_started  no checkpoint (a run killed before its first checkpoint starts again)
//   running      not done, and a live `moda train` on this host holds the folder's lock (another
//                sweep or a hand-started run): `run` leaves it alone
//   stale        the folder's config.json, resolved with today's defaults, differs from the point's
//                config in a field that changes the experiment (anything but
//                distributed/resume_check.h's outcome-neutral fields):
//                the manifest or its base was edited after this point trained. `run` neither
//                skips it as done nor trains over it; the status names each field and both values
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include "sweep/run_folder.h"

namespace moda::sweep {

enum class PointState { NotStarted, Partial, NoFinalEval, Failed, Running, Done, Stale };

const char* state_name(PointState s);

struct PointStatus {
  PointState state = PointState::NotStarted;
  int64_t checkpoint_step = 0;       // latest checkpoint's step (0: none)
  int64_t logged_step = 0;           // last training step in metrics.jsonl
  int64_t final_step = 0;            // the config's train.steps
  long pid = 0;                      // the training process, when running
  bool checkpoints_removed = false;  // done, without the checkpoints
  std::vector<Attempt> attempts;
  std::vector<std::string> stale_fields;  // "optim.lr: run 0.0003, manifest 0.001", when stale
  // "done", "partial (step 4 of 8)", "failed (exit 1, step 4 of 8)", ...
  std::string describe() const;
};

// `expected_config`: the point's resolved config (TrainConfig::resolved), compared with the folder's
// config.json for the stale state; null skips that comparison.
PointStatus inspect_point(const std::string& run_dir, int64_t final_step, bool has_val_sets,
                          const nlohmann::json* expected_config = nullptr);

}  // namespace moda::sweep
