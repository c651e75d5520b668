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

// ---------------------------------------------------------------------------------------------
// The differentiable op library (namespace moda::ops). Each family lives in its own header,
// written by whoever owns its kernels; autograd/ops.h includes them all. Exact signatures (all
// ops dispatch on the inputs' device: CPU kernels for f32/f64, CUDA kernels for f32/bf16):
//
// autograd/pointwise_ops.h
//   Tensor add(const Tensor& a, const Tensor& b);          // same shape
//   Tensor mul(const Tensor& a, const Tensor& b);          // same shape
//   Tensor scale(const Tensor& a, double alpha);
//   Tensor cast(const Tensor& a, DType dtype);             // f32 <-> bf16 (f64 on CPU); grad cast back
//   Tensor sum(const Tensor& a);                           // all elements -> shape {1}, f32 (f64 in)
//   Tensor mean(const Tensor& a);
//   Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);  // last dim; weight [D] or undefined
//   Tensor rope(const Tensor& x, double theta, int64_t position_offset = 0);  // x [B,T,H,d], rotate-half
//   Tensor swiglu(const Tensor& x);                        // [..., 2h] as [gate | up] -> [..., h]
//   Tensor softmax(const Tensor& x);                       // last dim
// autograd/dense_ops.h
//   Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
//       // a [..., M, K] (or [..., K, M] if trans_a), b [..., K, N] or [K, N] (broadcast over batch)
//   Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
//       // x [..., in], weight [out, in], bias [out] or undefined -> [..., out]
//   Tensor embedding(const Tensor& table, const Tensor& ids);  // table [V, D], ids i32/i64 any shape
//   Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -1);
//       // logits [N, V] f32/bf16, targets [N] i32/i64 -> mean loss over non-ignored rows, shape {1}, f32
//   Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = true);
//       // q [B,T,Hq,d], k,v [B,T,Hk,d] -> [B,T,Hq,d]; plain unfused reference
// autograd/moda_attention_ops.h
//   Tensor moda_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& depth_k,
//                         const Tensor& depth_v, bool causal = true);   // depth_* [B,T,L,Hk,d] views
//   Tensor moda_attention_into(q, k, v, depth_k, depth_v, bool causal, GradSinksFn sinks,
//                              const std::vector<Tensor>& ordering = {});  // stream form: grads added into sinks
//   Tensor moda_attention_decode(q, k, v, depth_k, depth_v, int64_t q_offset);  // cached decoding, no graph
// Optimiser kernels (AdamW, grad norm / clipping) are not differentiable: nn/ calls kernels/ directly.
