#pragma once
// The configuration of a training run: one JSON file with sections "model" (nn/model_config.h),
// "data", "optim" and "train", plus `--set section.field=value` overrides. Every field is
// validated; errors name the field, the value and the rule. docs/training.md lists every field.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/model_config.h"

namespace moda {

struct DataConfig {
  std::vector<std::string> train;                       // shard paths (globs expanded)
  std::map<std::string, std::vector<std::string>> val;  // validation set name -> shards
  int64_t seq_len = 256;
};

struct OptimConfig {
  double lr = 3e-4, min_lr = 3e-5;
  int64_t warmup_steps = 0;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // 0 disables clipping
};

struct TrainerConfig {
  int64_t steps = 100;
  int64_t global_batch = 8;      // sequences per optimiser step
  int64_t micro_batch = 8;       // sequences per forward/backward; global_batch must be a multiple
  int64_t eval_every = 0;        // steps; 0: only at the end
  int64_t eval_max_batches = 0;  // cap per validation set during training (0: whole sets)
  int64_t checkpoint_every = 0;  // steps; 0: only at the end
  int64_t keep_checkpoints = 2;
  // Write checkpoints on a background thread from a host snapshot, so training goes on while the
  // files are written (the step stalls only for the copy); false: the whole save stalls the step.
  bool async_checkpoint = true;
  // "none" | "block": keep only each block's input in the forward and recompute the block in
  // backward (nn::LanguageModel::set_activation_checkpointing): less memory, one more forward.
  std::string activation_checkpointing = "none";
  // Which kernels run attention without depth keys on CUDA (autograd/attention_l0.h): "auto"
  // (timed and checked per shape), "moda" (ours) or "cudnn" (cuDNN's fused SDPA).
  std::string attention_l0 = "auto";
  int64_t log_every = 10;
  uint64_t seed = 1234;
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  // Longest wait of one collective for the other ranks before this rank reports the fault (rank,
  // collective, step) and aborts the job: a dead or hung rank ends the run with a message, not a
  // hang. Ten minutes covers a slow checkpoint or evaluation on another rank.
  double collective_timeout_s = 600;
};

// How the model is spread over the ranks (docs/distributed.md).
struct ParallelConfig {
  // auto: fully sharded when there are several ranks, whole on one; full: sharded even on one
  // rank (the same code path as N ranks: for tests and for measuring its cost).
  std::string sharding = "auto";
  // true: a block's gathered parameters are freed after its forward and gathered again for its
  // backward (ZeRO-3); false: kept from forward to the end of the backward (ZeRO-2-like).
  bool reshard_after_forward = true;
  std::string reduce_dtype = "fp32";  // fp32 | bf16: the dtype gradients are reduce-scattered in
};

struct TrainConfig {
  nn::ModelConfig model;
  DataConfig data;
  OptimConfig optim;
  TrainerConfig train;
  ParallelConfig parallel;
  nlohmann::json resolved;  // the whole config after overrides and defaults, saved in the run folder

  int64_t accumulation_steps() const { return train.global_batch / train.micro_batch; }
};

// Parses and validates; shard globs must match at least one file.
TrainConfig train_config_from_json(const nlohmann::json& doc);
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides);

// Expands a shard pattern (glob) into sorted paths; errors name the pattern when nothing matches.
std::vector<std::string> expand_shards(const std::string& pattern, const std::string& field);

}  // namespace moda
