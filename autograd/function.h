#pragma once
// How differentiable ops are written (the only API op authors need):
//
//   Tensor rms_norm(const Tensor& x, const Tensor& w, double eps) {
//     Tensor y = ...; Tensor rstd = ...;                   // forward: call kernels/
//     return record_op("rms_norm", {x, w}, {y}, [x, w, rstd](const std::vector<Tensor>& g) {
//       Tensor dx = ..., dw = ...;                         // backward: call kernels/ (grad mode is off)
//       return std::vector<Tensor>{dx, dw};                // one per input; Tensor() = none
//     })[0];
//   }
//
// record_op returns the outputs unchanged when no input requires grad or grad mode is off (then
// the closure and what it captured are dropped at once). Otherwise it creates a Node whose edges
// point at the inputs' producers, marks the outputs as requiring grad and links them to the node.
// The closure is destroyed right after it runs, which frees what it saved.
// Gradients an op returns must have its input's shape; any layout is accepted (made contiguous).
#include <initializer_list>
#include <vector>

#include "autograd/graph.h"
#include "core/tensor.h"

namespace moda {

std::vector<Tensor> record_op(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor> outputs,
                              BackwardFn backward, bool run_without_grad = false);

// True when an op over these inputs must record a node (grad mode on and some input requires grad).
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Adds `g` into `acc` (same shape, dtype and device); used for gradient accumulation.
void accumulate_into(Tensor& acc, const Tensor& g);

}  // namespace moda
