#pragma once
// The one way the commands that use a trained model (eval, generate, checkpoint export) load it: the checkpoint
// (a run folder's latest or one checkpoints/step-N folder), its model config, and the model built
// on `device` (bf16 on CUDA, f32 on the CPU) holding the checkpoint's weights.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/device.h"
#include "nn/language_model.h"

namespace moda::app {

struct CheckpointModel {
  std::string dir;        // the checkpoint folder read
  nlohmann::json state;   // its trainer state (step, tokens, loader, config)
  nlohmann::json config;  // the training config saved with it (sections model, data, ...)
  std::unique_ptr<nn::LanguageModel> model;
};

// Errors (moda::Error) name the path and what is missing or malformed. verify = false skips the
// SHA-256 comparison of the checkpoint's files.
CheckpointModel load_checkpoint_model(const std::string& path, Device device, bool verify);

}  // namespace moda::app
