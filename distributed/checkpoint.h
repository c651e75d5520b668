#pragma once
// Checkpoints: one folder per step under <run>/checkpoints/, written completely under a temporary
// name and then renamed into place, after which the pointer file <run>/checkpoints/latest is
// replaced atomically. A crash at any moment leaves the previous checkpoint and pointer intact.
//
//   <run>/checkpoints/step-N/model.safetensors      weights (fp32), names as the model's state dict
//   <run>/checkpoints/step-N/optimizer.safetensors  AdamW moments (+ fp32 masters), "__step__"
//   <run>/checkpoints/step-N/state.json             trainer state (step, tokens, loader, config)
//   <run>/checkpoints/latest                        "step-N\n"
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/safetensors.h"

namespace moda {

struct Checkpoint {
  NamedTensors model;
  NamedTensors optimizer;
  nlohmann::json state;
};

// Writes checkpoint `step` into run_dir and points `latest` at it; keeps the newest `keep` step
// folders (0 keeps all). Returns the checkpoint folder.
std::string save_checkpoint(const std::string& run_dir, int64_t step, const Checkpoint& ckpt, int keep = 0);

struct LoadedCheckpoint {
  std::string dir;
  SafetensorsFile model, optimizer;
  nlohmann::json state;
};

// `path` is a run folder (its latest checkpoint) or one checkpoint folder. Errors name what is
// missing or malformed.
LoadedCheckpoint load_checkpoint(const std::string& path, bool with_optimizer = true);

// The latest complete checkpoint folder of a run, if any.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

}  // namespace moda
