#pragma once
// The sharded state of fully sharded data-parallel training (docs/distributed.md): each of the
// model's flat parameter groups (nn/module.h) of n elements is padded to N S elements
// (S = ceil(n / N), N ranks) and rank r owns elements [r S, (r + 1) S):
//   gather(g)     the group's parameters <- all-gather of every rank's fp32 master shard, cast to
//                 the compute dtype (distributed/parameter_sharding.h decides when);
//   reduce(g)     the group's full gradient -> reduce-scatter (in fp32 or the compute dtype) ->
//                 the rank's fp32 gradient shard (the trainer seeds backward with
//                 1 / (accumulation x N), so the sum over ranks is the mean over the global batch);
//   grad_norm()   the global norm: an all-reduce of the shards' sums of squares;
//   step()        AdamW on the rank's shard only: fp32 masters and both moments exist for 1/N of
//                 the parameters.
// A shard may cut a parameter; each cut piece keeps its parameter's weight-decay flag.
#include <functional>
#include <vector>

#include "distributed/comm/communicator.h"
#include "nn/language_model.h"
#include "nn/optim.h"

namespace moda {

class ShardedOptimizer {
 public:
  // reduce_dtype: the dtype gradients travel in (F32, or the model's compute dtype).
  ShardedOptimizer(nn::LanguageModel& model, Communicator& comm, const AdamWParams& hyper,
                   DType reduce_dtype = DType::F32);

  size_t num_groups() const { return groups_.size(); }
  void gather(size_t g);  // the group's flat buffer must have memory
  void reduce(size_t g);  // the group's flat gradient must hold this rank's gradient

  // Queued forms, for overlap (Communicator::Work): start_*() queues the collective; finish()
  // orders the compute stream after it and does what is left (the copy out of a padded buffer,
  // the cast of a bf16 reduction). Until finish() the group's flat buffer (gather) or flat
  // gradient (reduce) must be neither read nor freed. gather() and reduce() are start + finish.
  struct Pending {
    size_t group = 0;
    std::unique_ptr<Communicator::Work> work;
    Tensor staging;  // padded gather buffer or bf16 reduction, still to be copied
  };
  bool asynchronous() const { return comm_.asynchronous(); }
  Pending start_gather(size_t g);
  Pending start_reduce(size_t g);
  void finish_gather(Pending& p);
  void finish_reduce(Pending& p);
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
  // export_state() into `into`, whose tensors are overwritten in place when a previous export made
  // them (same names and sizes), else made afresh in pinned host memory: a trainer that keeps
  // `into` between checkpoints allocates and pins once, and every later snapshot is a plain copy.
  void export_state_into(NamedTensors& into) const;
  int64_t steps_taken() const;
  void import_state(const FullVectorReader& read, int64_t adamw_steps);

 private:
  struct GroupShard {
    nn::ParamGroup* group = nullptr;
    int64_t numel = 0, shard = 0;  // n and S
    Tensor master, grad;           // [S] fp32: the rank's parameters and gradient
  };
  static std::vector<nn::OptimParam> shard_params(GroupShard& g, int rank);

  Communicator& comm_;
  DType reduce_dtype_;
  std::vector<GroupShard> groups_;
  std::unique_ptr<nn::AdamW> adamw_;
};

}  // namespace moda
