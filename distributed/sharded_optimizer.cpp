#include "distributed/sharded_optimizer.h"

#include <cmath>

#include "autograd/graph.h"
#include "core/error.h"

namespace moda {

ShardedOptimizer::ShardedOptimizer(nn::LanguageModel& model, Communicator& comm, const AdamWParams& hyper)
    : comm_(comm) {
  const int world = comm.world_size(), rank = comm.rank();
  std::vector<nn::OptimParam> params;
  groups_.reserve(model.param_groups().size());
  for (auto& group : model.param_groups()) {
    GroupShard g;
    g.group = &group;
    g.numel = group.numel();
    g.shard = (g.numel + world - 1) / world;
    const Device dev = group.flat.device();
    g.padded = Tensor::zeros({g.shard * world}, group.flat.dtype(), dev);
    g.reduced = Tensor::empty({g.shard}, group.flat.dtype(), dev);
    g.master = Tensor::zeros({g.shard}, DType::F32, dev);
    g.grad = Tensor::zeros({g.shard}, DType::F32, dev);
    // The rank's slice of the (identically initialised) parameters; padding stays zero.
    const int64_t lo = std::min<int64_t>(rank * g.shard, g.numel), hi = std::min<int64_t>(lo + g.shard, g.numel);
    if (hi > lo) g.master.narrow(0, 0, hi - lo).copy_(group.flat.narrow(0, lo, hi - lo));
    groups_.push_back(g);
  }
  for (auto& g : groups_)
    for (auto& p : shard_params(g, rank)) params.push_back(std::move(p));
  adamw_ = std::make_unique<nn::AdamW>(params, hyper);
}

std::vector<nn::OptimParam> ShardedOptimizer::shard_params(GroupShard& g, int rank) {
  std::vector<nn::OptimParam> out;
  const int64_t begin = rank * g.shard, end = begin + g.shard;
  for (size_t i = 0; i < g.group->params.size(); ++i) {
    const auto& p = g.group->params[i];
    const int64_t off = g.group->offsets[i], n = p.tensor.numel();
    const int64_t lo = std::max(off, begin), hi = std::min({off + n, end, g.numel});
    if (lo >= hi) continue;
    Tensor piece = g.master.narrow(0, lo - begin, hi - lo);
    piece.set_grad(g.grad.narrow(0, lo - begin, hi - lo));
    out.push_back({p.name + "[" + std::to_string(lo - off) + ":" + std::to_string(hi - off) + "]", piece, p.decay});
  }
  return out;
}

void ShardedOptimizer::reduce_gradients() {
  NoGradGuard no_grad;
  for (auto& g : groups_) {
    MODA_CHECK(g.group->grad.defined(), "sharded optimiser: group ", g.group->name, " has no gradient buffer");
    g.padded.narrow(0, 0, g.numel).copy_(g.group->grad);
    comm_.reduce_scatter_sum(g.reduced, g.padded);
    g.grad.copy_(g.reduced);
  }
}

double ShardedOptimizer::grad_norm() const {
  const double local = adamw_->grad_norm();
  Tensor sq = Tensor::full({1}, local * local, DType::F64);
  comm_.all_reduce_sum(sq);
  return std::sqrt(sq.item());
}

void ShardedOptimizer::step(double lr, double grad_scale) {
  NoGradGuard no_grad;
  adamw_->step(lr, grad_scale);
  for (auto& g : groups_) {
    g.reduced.copy_(g.master);  // to the compute dtype
    comm_.all_gather(g.padded, g.reduced);
    g.group->flat.copy_(g.padded.narrow(0, 0, g.numel));
  }
}

size_t ShardedOptimizer::shard_state_bytes() const {
  size_t total = 0;
  for (const auto& g : groups_) total += size_t(g.shard) * 4 * 4;  // master, exp_avg, exp_avg_sq, grad
  return total;
}

size_t ShardedOptimizer::unsharded_state_bytes() const {
  size_t total = 0;
  for (const auto& g : groups_) total += size_t(g.numel) * 4 * 4;
  return total;
}

}  // namespace moda
