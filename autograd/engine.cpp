#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <unordered_set>

#include "autograd/function.h"
#include "autograd/graph.h"
#include "core/error.h"

namespace moda {

// ---------------------------------------------------------------------------------------------
// grad mode

static thread_local bool g_grad_mode = true;
bool grad_mode_enabled() { return g_grad_mode; }
NoGradGuard::NoGradGuard() : previous_(g_grad_mode) { g_grad_mode = false; }
NoGradGuard::~NoGradGuard() { g_grad_mode = previous_; }
EnableGradGuard::EnableGradGuard() : previous_(g_grad_mode) { g_grad_mode = true; }
EnableGradGuard::~EnableGradGuard() { g_grad_mode = previous_; }

// ---------------------------------------------------------------------------------------------
// pre-backward hooks

namespace {
std::unordered_map<const Storage*, std::function<void()>>& pre_hooks() {
  static std::unordered_map<const Storage*, std::function<void()>> hooks;
  return hooks;
}

std::function<void()> pre_hook_for(const std::vector<Tensor>& inputs) {
  const auto& hooks = pre_hooks();
  if (hooks.empty()) return {};
  for (const Tensor& t : inputs) {
    if (!t.defined()) continue;
    auto it = hooks.find(t.impl()->storage.get());
    if (it != hooks.end()) return it->second;
  }
  return {};
}
}  // namespace

void set_backward_pre_hook(const Storage* storage, std::function<void()> hook) {
  pre_hooks()[storage] = std::move(hook);
}
void clear_backward_pre_hook(const Storage* storage) { pre_hooks().erase(storage); }

// ---------------------------------------------------------------------------------------------
// recording

static uint64_t next_sequence_number() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}

static std::shared_ptr<Node> grad_accumulator(const Tensor& leaf) {
  auto& meta = leaf.impl()->autograd;
  if (!meta.grad_accumulator) {
    auto node = std::make_shared<Node>();
    node->name = "AccumulateGrad(" + (leaf.name().empty() ? std::string("leaf") : leaf.name()) + ")";
    node->leaf = leaf.impl_ptr();
    node->output_shapes = {leaf.shape()};
    node->output_dtypes = {leaf.dtype()};
    node->device = leaf.device();
    meta.grad_accumulator = node;  // the leaf owns its accumulator; the node refers back weakly
  }
  return meta.grad_accumulator;
}

static Edge edge_for(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  auto& meta = t.impl()->autograd;
  if (meta.grad_fn) return {meta.grad_fn, meta.output_nr};
  return {grad_accumulator(t), 0};
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_mode_enabled()) return false;
  return std::any_of(inputs.begin(), inputs.end(), [](const Tensor& t) { return t.defined() && t.requires_grad(); });
}

std::vector<Tensor> record_op(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor> outputs,
                              BackwardFn backward, bool run_without_grad) {
  if (!any_requires_grad(inputs)) return outputs;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->backward = std::move(backward);
  node->run_without_grad = run_without_grad;
  node->pre_backward = pre_hook_for(inputs);
  node->sequence = next_sequence_number();
  for (const Tensor& in : inputs) node->next.push_back(edge_for(in));
  for (size_t i = 0; i < outputs.size(); ++i) {
    Tensor& out = outputs[i];
    node->output_shapes.push_back(out.shape());
    node->output_dtypes.push_back(out.dtype());
    node->device = out.device();
    // Outputs may be views sharing storage with an input; they still get their own graph identity.
    if (out.impl()->autograd.grad_fn || out.impl()->autograd.requires_grad) out = out.detach();
    out.impl()->autograd.requires_grad = true;
    out.impl()->autograd.grad_fn = node;
    out.impl()->autograd.output_nr = static_cast<int>(i);
  }
  return outputs;
}

// ---------------------------------------------------------------------------------------------
// backward

namespace {

struct PendingGrads {
  std::vector<Tensor> grads;
};

void add_grad(std::vector<Tensor>& slot_list, int index, const Tensor& g, const Node& node) {
  if (!g.defined()) return;
  Tensor& slot = slot_list[index];
  MODA_CHECK(g.shape() == node.output_shapes[index], "backward: gradient for output ", index, " of ", node.name,
             " has shape ", shape_str(g.shape()), ", expected ", shape_str(node.output_shapes[index]));
  if (!slot.defined()) {
    slot = g;
    return;
  }
  // Never add in place into a tensor another edge might hold: make a fresh sum.
  Tensor sum = slot.clone();
  accumulate_into(sum, g);
  slot = sum;
}

void accumulate_leaf(Node& node, const Tensor& g) {
  auto leaf_impl = node.leaf.lock();
  if (!leaf_impl || !g.defined()) return;
  Tensor leaf(leaf_impl);
  auto& meta = leaf_impl->autograd;
  if (meta.grad) {
    Tensor acc(meta.grad);
    accumulate_into(acc, g);
  } else {
    Tensor own = g.clone();  // a copy: g may be shared with other gradients of this pass
    if (own.dtype() != leaf.dtype()) own = own.to(leaf.dtype());
    meta.grad = own.impl_ptr();
  }
  Tensor grad(meta.grad);
  for (auto& hook : meta.grad_ready_hooks) hook(grad);
}

// The nodes whose gradients are complete, in the order they run: leaves' accumulations first
// (their grad-ready hooks fire as early as possible), then the most recently recorded node. That
// is the forward in reverse, as in PyTorch: a block's backward finishes, gradients and all,
// before the block below starts, which sharded training relies on to reduce and free each
// group's gradient early (a last-in-first-out stack would instead run depth first down to the
// embedding before accumulating the upper blocks' weight gradients).
class ReadyQueue {
 public:
  void push(std::shared_ptr<Node> node) {
    queued_.insert(node.get());
    heap_.push_back(std::move(node));
    std::push_heap(heap_.begin(), heap_.end(), runs_later);
  }
  std::shared_ptr<Node> pop() {
    std::pop_heap(heap_.begin(), heap_.end(), runs_later);
    auto node = std::move(heap_.back());
    heap_.pop_back();
    queued_.erase(node.get());
    return node;
  }
  bool empty() const { return heap_.empty(); }
  bool contains(Node* node) const { return queued_.count(node) > 0; }

 private:
  static bool runs_later(const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    const bool a_leaf = !a->leaf.expired(), b_leaf = !b->leaf.expired();
    if (a_leaf != b_leaf) return b_leaf;
    return a->sequence < b->sequence;
  }
  std::vector<std::shared_ptr<Node>> heap_;
  std::unordered_set<Node*> queued_;
};

}  // namespace

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds) {
  MODA_CHECK(roots.size() == seeds.size(), "backward: ", roots.size(), " roots but ", seeds.size(), " seeds");
  NoGradGuard no_grad;  // backward functions compute plain tensors; no double backward
  std::unordered_map<Node*, int> dependencies;
  std::unordered_map<Node*, PendingGrads> pending;
  std::vector<std::shared_ptr<Node>> stack;
  ReadyQueue ready;
  std::unordered_set<Node*> seen;

  auto root_edge = [](const Tensor& t) {
    MODA_CHECK(t.requires_grad(), "backward: ", t.describe(), " does not require grad (no graph to run)");
    return edge_for(t);
  };
  for (const Tensor& r : roots) {
    Edge e = root_edge(r);
    if (seen.insert(e.node.get()).second) stack.push_back(e.node);
  }
  // Count, for every node, how many edges point at it.
  while (!stack.empty()) {
    auto node = stack.back();
    stack.pop_back();
    for (const Edge& e : node->next) {
      if (!e.node) continue;
      dependencies[e.node.get()]++;
      if (seen.insert(e.node.get()).second) stack.push_back(e.node);
    }
  }
  for (size_t i = 0; i < roots.size(); ++i) {
    Edge e = root_edge(roots[i]);
    auto& p = pending[e.node.get()];
    p.grads.resize(e.node->output_shapes.size());
    add_grad(p.grads, e.input_nr, seeds[i], *e.node);
    if (dependencies[e.node.get()] == 0 && !ready.contains(e.node.get())) ready.push(e.node);
  }

  while (!ready.empty()) {
    auto node = ready.pop();
    auto& p = pending[node.get()];
    p.grads.resize(node->output_shapes.size());
    std::vector<Tensor> grads = std::move(p.grads);
    pending.erase(node.get());

    if (!node->leaf.expired()) {
      accumulate_leaf(*node, grads[0]);
      continue;
    }
    bool any = std::any_of(grads.begin(), grads.end(), [](const Tensor& g) { return g.defined(); });
    std::vector<Tensor> input_grads;
    if ((any || node->run_without_grad) && node->backward) {
      if (any)
        for (size_t i = 0; i < grads.size(); ++i)
          if (!grads[i].defined())
            grads[i] = Tensor::zeros(node->output_shapes[i], node->output_dtypes[i], node->device);
      if (node->pre_backward) node->pre_backward();
      input_grads = node->backward(grads);
      MODA_CHECK(input_grads.size() == node->next.size(), "backward of ", node->name, " returned ", input_grads.size(),
                 " gradients for ", node->next.size(), " inputs");
    }
    node->backward = nullptr;  // frees saved tensors: the graph is consumed
    node->pre_backward = nullptr;
    for (size_t i = 0; i < node->next.size(); ++i) {
      const Edge& e = node->next[i];
      if (!e.node) continue;
      auto& target = pending[e.node.get()];
      target.grads.resize(e.node->output_shapes.size());
      if (i < input_grads.size()) add_grad(target.grads, e.input_nr, input_grads[i], *e.node);
      if (--dependencies[e.node.get()] == 0) ready.push(e.node);
    }
    node->next.clear();
  }
}

}  // namespace moda
