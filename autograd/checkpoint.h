#pragma once
// Activation checkpointing (train.activation_checkpointing: block): y = fn(x) runs without
// recording, so none of fn's intermediate activations outlive the forward, and one node stands
// for all of it. Its backward runs fn(x) again with recording on and backpropagates the incoming
// gradient through that fresh graph (a nested run_backward), which accumulates the gradients of
// every parameter fn reads, as the uncheckpointed graph would, and returns dx. Costs one more
// forward of fn per backward; keeps only x.
//
// fn must compute the same values when run again (it may write side state, such as depth-stream
// slots, if the second write stores the same values). When fn runs with recording on, it appends
// to `side_roots` the outputs that the rest of the network reaches only through side state (the
// depth-stream tokens of the slots it wrote: their gradients arrive in the stream's buffers, and
// the nodes that deliver them must run although nothing in fn's output depends on them); the
// backward starts from those too. `reads` are tensors fn reads without taking
// them as x, typically its parameters: the node lists them (no gradient flows to them through it)
// so that a pre-backward hook set on their storage (autograd/graph.h; sharded training gathers
// the parameters there) runs before the recomputation.
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace moda {

using CheckpointedFn = std::function<Tensor(const Tensor& x, std::vector<Tensor>& side_roots)>;
Tensor checkpoint(CheckpointedFn fn, const Tensor& x, const std::vector<Tensor>& reads);

}  // namespace moda
