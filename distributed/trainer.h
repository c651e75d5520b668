#pragma once
// Training on one device (the FSDP trainer will extend this loop across ranks). The run folder is
// a contract other tools build on (docs/training.md):
//   <run>/config.json      the resolved config
//   <run>/metrics.jsonl    one JSON object per logged step / evaluation
//   <run>/checkpoints/     step-N/ folders and the `latest` pointer (distributed/checkpoint.h)
#include <string>

#include "distributed/evaluate.h"
#include "distributed/train_config.h"

namespace moda {

struct TrainOptions {
  std::string run_dir;
  bool resume = false;
  // Stop (after checkpointing) once this step is done, as if interrupted; 0 = run to the end.
  // The schedule still spans train.steps, so a later --resume continues the same run.
  int64_t stop_after = 0;
};

struct TrainSummary {
  int64_t steps = 0;
  double last_loss = 0;
  EvalReport eval;
  size_t peak_device_bytes = 0;
};

// Runs (or resumes) training. A non-finite loss or gradient norm stops the run with an error
// naming the step; checkpoints already written stay intact.
TrainSummary train(const TrainConfig& config, const TrainOptions& options);

// "auto" -> cuda:0 when a GPU is present, else cpu.
Device resolve_device(const std::string& spec);

}  // namespace moda
