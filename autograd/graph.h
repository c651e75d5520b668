#pragma once
// The dynamic graph: every differentiable op that sees an input requiring grad records a Node
// holding its backward function and edges to the nodes that produced its inputs. Leaves that
// require grad get an AccumulateGrad node. Modelled on PyTorch's Node / Edge / Engine.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moda {

struct Edge {
  std::shared_ptr<Node> node;  // null: the input needs no gradient
  int input_nr = 0;            // which output of `node` the input was
};

// Backward function: receives one gradient per output (undefined ones are filled with zeros unless
// all are undefined) and returns one gradient per input (undefined = no gradient for it).
using BackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs)>;

struct Node {
  std::string name;
  std::vector<Edge> next;            // one per input of the op
  std::vector<Shape> output_shapes;  // for zero-filling missing output gradients
  std::vector<DType> output_dtypes;
  Device device;
  BackwardFn backward;  // cleared after it runs, which frees saved tensors
  // Run even when no gradient reached any output (used by depth-stream slot writes, whose gradient
  // arrives through a side buffer rather than through the graph).
  bool run_without_grad = false;
  // Recording order: the engine runs later-recorded nodes first (the forward in reverse).
  uint64_t sequence = 0;
  // Leaves only: the tensor whose .grad is accumulated (AccumulateGrad semantics).
  std::weak_ptr<TensorImpl> leaf;
  // Runs just before `backward` (see set_backward_pre_hook): sharded training gathers the
  // parameters the node saved, which were freed after the forward.
  std::function<void()> pre_backward;
  virtual ~Node() = default;
};

// Whether ops record graph nodes on this thread (NoGradGuard turns it off).
bool grad_mode_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Turns recording back on inside a backward function (the engine runs them under NoGradGuard):
// activation checkpointing (autograd/checkpoint.h) records its recomputation there.
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

// Pre-backward hooks by storage: while one is set for `storage`, every node recorded with an input
// stored there gets `hook` as its pre-backward hook. Sharded training sets one per parameter
// group (distributed/parameter_sharding.h), so exactly the nodes that read a group's parameters
// (and produce its gradients) gather the group again in backward, whatever order the engine runs
// them in and whichever module uses the parameters (a tied head reads the embedding's).
void set_backward_pre_hook(const Storage* storage, std::function<void()> hook);
void clear_backward_pre_hook(const Storage* storage);

// Runs the backward pass from `roots` (each with its seed gradient). Nodes execute in an order
// where a node runs only after every consumer of its outputs has run, so gradients arriving at a
// node are complete; a leaf's grad-ready hooks fire then.
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds);

}  // namespace moda
