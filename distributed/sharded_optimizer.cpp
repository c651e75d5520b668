#include "distributed/sharded_optimizer.h"

#include <cmath>

#include "autograd/graph.h"
#include "core/error.h"

namespace moda {

ShardedOptimizer::ShardedOptimizer(nn::LanguageModel& model, Communicator& comm, const AdamWParams& hyper,
                                   DType reduce_dtype)
    : comm_(comm), reduce_dtype_(reduce_dtype) {
  const int world = comm.world_size(), rank = comm.rank();
  std::vector<nn::OptimParam> params;
  groups_.reserve(model.param_groups().size());
  for (auto& group : model.param_groups()) {
    GroupShard g;
    g.group = &group;
    g.numel = group.numel();
    g.shard = (g.numel + world - 1) / world;
    const Device dev = group.flat.device();
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

// Collectives move whole padded groups; when N divides n the flat buffers are used directly.
ShardedOptimizer::Pending ShardedOptimizer::start_gather(size_t index) {
  NoGradGuard no_grad;
  GroupShard& g = groups_.at(index);
  Tensor& flat = g.group->flat;
  Tensor shard = g.master.to(flat.dtype());
  Pending p;
  p.group = index;
  if (g.shard * comm_.world_size() == g.numel) {
    p.work = comm_.all_gather_async(flat, shard);
  } else {
    p.staging = Tensor::empty({g.shard * comm_.world_size()}, flat.dtype(), flat.device());
    p.work = comm_.all_gather_async(p.staging, shard);
  }
  return p;
}

void ShardedOptimizer::finish_gather(Pending& p) {
  NoGradGuard no_grad;
  p.work->wait();
  if (p.staging.defined()) {
    const GroupShard& g = groups_.at(p.group);
    g.group->flat.copy_(p.staging.narrow(0, 0, g.numel));
  }
  p = Pending{};
}

ShardedOptimizer::Pending ShardedOptimizer::start_reduce(size_t index) {
  NoGradGuard no_grad;
  GroupShard& g = groups_.at(index);
  const Tensor& full = g.group->grad;
  MODA_CHECK(full.defined(), "sharded optimiser: group ", g.group->name, " has no gradient buffer");
  const int64_t padded_numel = g.shard * comm_.world_size();
  Tensor send = full;
  if (full.dtype() != reduce_dtype_ || padded_numel != g.numel) {
    send = Tensor::empty({padded_numel}, reduce_dtype_, full.device());
    send.narrow(0, 0, g.numel).copy_(full);
    if (padded_numel > g.numel) send.narrow(0, g.numel, padded_numel - g.numel).zero_();
  }
  Pending p;
  p.group = index;
  if (reduce_dtype_ == DType::F32) {
    p.work = comm_.reduce_scatter_sum_async(g.grad, send);
  } else {
    p.staging = Tensor::empty({g.shard}, reduce_dtype_, full.device());
    p.work = comm_.reduce_scatter_sum_async(p.staging, send);
  }
  return p;
}

void ShardedOptimizer::finish_reduce(Pending& p) {
  NoGradGuard no_grad;
  p.work->wait();
  if (p.staging.defined()) groups_.at(p.group).grad.copy_(p.staging);
  p = Pending{};
}

void ShardedOptimizer::gather(size_t index) {
  Pending p = start_gather(index);
  finish_gather(p);
}

void ShardedOptimizer::reduce(size_t index) {
  Pending p = start_reduce(index);
  finish_reduce(p);
}

double ShardedOptimizer::grad_norm() const {
  const double local = adamw_->grad_norm();
  Tensor sq = Tensor::full({1}, local * local, DType::F64);
  comm_.all_reduce_sum(sq);
  return std::sqrt(sq.item());
}

void ShardedOptimizer::step(double lr, double grad_scale) {
  NoGradGuard no_grad;
  adamw_->step(lr, grad_scale);  // the parameters follow when each group is next gathered
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
