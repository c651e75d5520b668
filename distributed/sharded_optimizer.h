#pragma once
// Data-parallel training with sharded optimiser state (ZeRO stage 2 on the flat parameter groups
// of nn/: the first step of docs/distributed.md's FSDP design). Every rank holds the whole model
// for forward and backward; each group's flat buffer is padded to a multiple of the world size N
// and rank r owns elements [r S, (r + 1) S), S = padded / N:
//   after backward   reduce_gradients(): each group's flat gradient is reduce-scattered into the
//                    rank's shard (the trainer seeds backward with 1 / (accumulation x N), so the
//                    sum over ranks is the mean over the global batch);
//   clipping         grad_norm(): the global norm, an all-reduce of the shards' sums of squares;
//   step             step(): AdamW on the rank's shard only (fp32 masters and moments for 1/N of
//                    the parameters), then every group's parameters are all-gathered back.
// A shard may cut a parameter; each cut piece keeps its parameter's weight-decay flag.
#include <functional>
#include <vector>

#include "distributed/comm/communicator.h"
#include "nn/language_model.h"
#include "nn/optim.h"

namespace moda {

class ShardedOptimizer {
 public:
  ShardedOptimizer(nn::LanguageModel& model, Communicator& comm, const AdamWParams& hyper);

  void reduce_gradients();
  double grad_norm() const;
  void step(double lr, double grad_scale);

  // Bytes this rank holds for optimiser state and gradient shards (fp32 masters, two moments,
  // gradient shard), and what one unsharded rank would hold: the 1/N accounting.
  size_t shard_state_bytes() const;
  size_t unsharded_state_bytes() const;

  // Checkpoint state (distributed/sharded_optimizer_state.cpp; formats: distributed/sharded_checkpoint.h).
  // export_state(): this rank's shard of every group as fp32 [S] host tensors "<group>.master",
  // "<group>.exp_avg", "<group>.exp_avg_sq" (padding zero). import_state() is collective: each
  // rank fills its [r S, (r + 1) S) from the full (unsharded) fp32 vectors that `read` returns
  // ranges of (a checkpoint of any world size), restores the AdamW step count and all-gathers
  // the parameters into the model, bit for bit what was saved.
  using FullVectorReader =
      std::function<void(const std::string& group, const std::string& kind, int64_t lo, int64_t hi, float* out)>;
  NamedTensors export_state() const;
  int64_t steps_taken() const;
  void import_state(const FullVectorReader& read, int64_t adamw_steps);

 private:
  struct GroupShard {
    nn::ParamGroup* group = nullptr;
    int64_t numel = 0, shard = 0;  // n and S
    Tensor padded;                 // [N S] staging for both collectives, compute dtype
    Tensor reduced;                // [S] this rank's summed gradient, compute dtype
    Tensor master, grad;           // [S] fp32: the rank's parameters and gradient
  };
  static std::vector<nn::OptimParam> shard_params(GroupShard& g, int rank);

  Communicator& comm_;
  std::vector<GroupShard> groups_;
  std::unique_ptr<nn::AdamW> adamw_;
};

}  // namespace moda
