#pragma once
// When each parameter group is gathered, freed and reduced: the FSDP2 / ZeRO-3 schedule on top of
// ShardedOptimizer's collectives (docs/distributed.md). Installed once by Trainer::shard_model():
//   forward     a group is gathered just before its first use (LanguageModel's group hooks); with
//               reshard_after_forward a block's parameters are freed right after its forward
//               (ZeRO-3), else kept until the end of the step's backward;
//   backward    every autograd node that reads a group's parameters carries a pre-backward hook
//               (autograd/graph.h) that gathers the group again if it was freed and gives its
//               gradient buffer memory; when the last of a group's parameter gradients is ready
//               (grad-ready hooks) on the step's last micro-batch, the group's gradient is
//               reduce-scattered into the rank's shard and the full gradient is freed, while the
//               backward goes on with the earlier groups;
//   after step  every group is freed: at rest a rank holds only its 1/N shards.
// Overlap, where the communicator queues collectives on its own stream (NCCL): the next group's
// gather is queued while the current group computes (forward: the group after; backward: the
// group before), and a group's reduce-scatter is waited for only when the next-but-one group's
// is queued (or at the end of the backward), when its full gradient is freed.
// Freeing keeps every tensor handle (core/tensor.h: Storage::release), so the layers never know.
// Collectives run in the same order on every rank because every rank runs the same graph.
#include <cstddef>
#include <deque>
#include <optional>
#include <vector>

#include "distributed/sharded_optimizer.h"
#include "nn/language_model.h"

namespace moda {

class ParameterSharding {
 public:
  ParameterSharding(nn::LanguageModel& model, ShardedOptimizer& optimizer, bool reshard_after_forward);
  ~ParameterSharding();
  ParameterSharding(const ParameterSharding&) = delete;
  ParameterSharding& operator=(const ParameterSharding&) = delete;

  // Before each micro-batch's forward; `last`: its backward ends the step (gradients are reduced).
  void begin_micro_batch(bool last);
  // After the micro-batch's backward: reduces (on the last micro-batch) and frees what the
  // grad-ready hooks did not reach (a group none of whose parameters got a gradient).
  void end_backward();
  // Frees every group's parameters and gradients; each is gathered again on its next use.
  void release_all();

  // Bytes of full (gathered) parameters and gradients held now, and the most held at once since
  // reset_peak(): with the shards' bytes (ShardedOptimizer::shard_state_bytes) the memory this
  // rank spends on parameters, gradients and optimiser state.
  size_t resident_bytes() const { return resident_; }
  size_t peak_resident_bytes() const { return peak_; }
  void reset_peak() { peak_ = resident_; }

 private:
  struct GroupState {
    size_t params = 0;  // parameters in the group: its gradient is complete when all are ready
    size_t ready = 0;   // grad-ready hooks fired in this backward
    bool finished = false;
  };
  void before_forward(size_t g);
  void after_forward(size_t g);
  void before_backward_node(size_t g);
  void ensure_grad(size_t g);  // gives the group's gradient buffer memory, zeroed, if it has none
  void on_grad_ready(size_t g);
  void finish_group(size_t g);  // the group's gradient is complete for this backward
  void gather(size_t g);        // the group's parameters present, now
  void prefetch(size_t g);      // queued, if the communicator overlaps and the group is absent
  void finish_oldest_reduce();
  void release_params(size_t g);
  void release_grad(size_t g);
  void track(const Tensor& t, bool gained);
  bool is_block(size_t g) const { return g > 0 && g + 1 < groups_.size(); }

  nn::LanguageModel& model_;
  ShardedOptimizer& optimizer_;
  bool reshard_after_forward_;
  bool last_micro_batch_ = true;
  std::vector<GroupState> groups_;
  std::vector<std::optional<ShardedOptimizer::Pending>> gathering_;  // per group: a queued gather
  std::deque<ShardedOptimizer::Pending> reducing_;                   // queued reductions, oldest first
  bool overlap_ = false;              // the communicator queues collectives on its own stream
  size_t max_queued_reductions_ = 0;  // reductions left queued while the backward goes on
  size_t resident_ = 0, peak_ = 0;
};

}  // namespace moda
