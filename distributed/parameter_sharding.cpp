#include "distributed/parameter_sharding.h"

#include "autograd/graph.h"

namespace moda {

namespace {
Storage& storage_of(const Tensor& t) { return *t.impl()->storage; }
}  // namespace

ParameterSharding::ParameterSharding(nn::LanguageModel& model, ShardedOptimizer& optimizer, bool reshard_after_forward)
    : model_(model), optimizer_(optimizer), reshard_after_forward_(reshard_after_forward) {
  auto& groups = model_.param_groups();
  groups_.resize(groups.size());
  gathering_.resize(groups.size());
  overlap_ = optimizer_.asynchronous();
  max_queued_reductions_ = overlap_ ? 2 : 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    groups_[g].params = groups[g].params.size();
    // Points every parameter's .grad at its view of the group's flat gradient, which is freed
    // below: one group's full gradient exists at a time, never the whole model's.
    groups[g].zero_grad();
    for (auto& p : groups[g].params) p.tensor.register_grad_ready_hook([this, g](Tensor&) { on_grad_ready(g); });
    set_backward_pre_hook(&storage_of(groups[g].flat), [this, g] { before_backward_node(g); });
    // Every rank holds the same initial values; from here on they live in the optimiser's shards.
    storage_of(groups[g].flat).release();
    storage_of(groups[g].grad).release();
  }
  model_.set_group_hooks({[this](size_t g) { before_forward(g); }, [this](size_t g) { after_forward(g); }});
}

ParameterSharding::~ParameterSharding() {
  model_.set_group_hooks({});
  for (auto& group : model_.param_groups()) {
    clear_backward_pre_hook(&storage_of(group.flat));
    for (auto& p : group.params) p.tensor.impl()->autograd.grad_ready_hooks.clear();
  }
}

void ParameterSharding::begin_micro_batch(bool last) {
  last_micro_batch_ = last;
  for (auto& s : groups_) s = {s.params, 0, false};
}

void ParameterSharding::before_forward(size_t g) {
  gather(g);
  if (g + 1 < groups_.size()) prefetch(g + 1);
}

void ParameterSharding::after_forward(size_t g) {
  // Without autograd (evaluation) nothing needs the parameters again before the next forward.
  if (is_block(g) && (reshard_after_forward_ || !grad_mode_enabled())) release_params(g);
}

void ParameterSharding::before_backward_node(size_t g) {
  gather(g);
  ensure_grad(g);
  if (g > 0) prefetch(g - 1);  // the backward goes down the groups
}

void ParameterSharding::ensure_grad(size_t g) {
  Storage& grad = storage_of(model_.param_groups()[g].grad);
  if (grad.released()) {  // the first gradient of this group in this step
    grad.materialize();
    track(model_.param_groups()[g].grad, true);
    model_.param_groups()[g].grad.zero_();
  }
}

void ParameterSharding::on_grad_ready(size_t g) {
  GroupState& s = groups_[g];
  if (++s.ready == s.params) finish_group(g);
}

void ParameterSharding::finish_group(size_t g) {
  GroupState& s = groups_[g];
  if (s.finished) return;
  s.finished = true;
  if (last_micro_batch_) {
    ensure_grad(g);  // zeros if no gradient reached the group
    reducing_.push_back(optimizer_.start_reduce(g));
    while (reducing_.size() > max_queued_reductions_) finish_oldest_reduce();
  }
  if (reshard_after_forward_ || last_micro_batch_) release_params(g);
}

void ParameterSharding::finish_oldest_reduce() {
  ShardedOptimizer::Pending p = std::move(reducing_.front());
  reducing_.pop_front();
  const size_t g = p.group;
  optimizer_.finish_reduce(p);
  release_grad(g);
}

void ParameterSharding::end_backward() {
  for (size_t g = 0; g < groups_.size(); ++g) finish_group(g);
  if (last_micro_batch_)
    while (!reducing_.empty()) finish_oldest_reduce();  // the optimiser reads every gradient shard next
}

void ParameterSharding::release_all() {
  while (!reducing_.empty()) finish_oldest_reduce();
  for (size_t g = 0; g < groups_.size(); ++g) {
    release_params(g);
    release_grad(g);
  }
}

void ParameterSharding::gather(size_t g) {
  if (gathering_[g]) {  // queued earlier: the compute stream now waits for it
    optimizer_.finish_gather(*gathering_[g]);
    gathering_[g].reset();
    return;
  }
  Tensor& flat = model_.param_groups()[g].flat;
  if (!storage_of(flat).released()) return;
  storage_of(flat).materialize();
  track(flat, true);
  optimizer_.gather(g);
}

void ParameterSharding::prefetch(size_t g) {
  if (!overlap_ || gathering_[g]) return;  // a synchronous communicator would only hold memory longer
  Tensor& flat = model_.param_groups()[g].flat;
  if (!storage_of(flat).released()) return;
  storage_of(flat).materialize();
  track(flat, true);
  gathering_[g] = optimizer_.start_gather(g);
}

void ParameterSharding::release_params(size_t g) {
  if (gathering_[g]) gather(g);  // never free memory a queued collective writes
  Tensor& flat = model_.param_groups()[g].flat;
  if (storage_of(flat).released()) return;
  storage_of(flat).release();
  track(flat, false);
}

void ParameterSharding::release_grad(size_t g) {
  Tensor& grad = model_.param_groups()[g].grad;
  if (storage_of(grad).released()) return;
  storage_of(grad).release();
  track(grad, false);
}

void ParameterSharding::track(const Tensor& t, bool gained) {
  const size_t bytes = storage_of(t).bytes();
  resident_ = gained ? resident_ + bytes : resident_ - bytes;
  peak_ = std::max(peak_, resident_);
}

}  // namespace moda
