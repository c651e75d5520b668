#pragma once
// Differentiable MoDA attention (kernels/cpu/moda_attention.h, kernels/cuda/moda_attention.h).
//   q [B,T,Hq,d], k, v [B,T,Hk,d], depth_k, depth_v [B,T,L,Hk,d] -> o [B,T,Hq,d]
// Row (b, t, h) attends, under one softmax with scale 1/sqrt(d), to the sequence keys 0..t
// (all keys when !causal) of KV head h / (Hq/Hk) and to the L depth keys of its own token t.
// Every input may be a strided view (e.g. slots of the depth-stream buffer [B,T,S,Hk,d]: the own
// slot through select(2, s), depth slots [0, L) through narrow(2, 0, L)); views whose innermost dim
// is not contiguous (or, on CUDA, whose strides are not multiples of 8 elements or whose start is
// not 16-byte aligned) are copied first. Stream slots need no copy when Hk*d is a multiple of 8.
// depth_k / depth_v may be undefined or have L = 0 (plain causal GQA attention).
// Devices and dtypes: CPU f32 / f64 (float64 accumulation); CUDA bf16 (fp32 accumulation, fused
// kernels; d in {64, 128}, Hq/Hk <= 32). The forward saves o and the per-row log-sum-exp. On CUDA
// an L = 0 call may run on cuDNN's fused attention instead (autograd/attention_l0.h).
//
// Two forms share one forward and one backward:
//   moda_attention       the gradients of all five inputs are returned fresh through the graph.
//   moda_attention_into  the model's form (nn/depth_stream.h): k, v, depth_k, depth_v are read-only
//                        views of a buffer outside the graph, and the backward ADDS their gradients
//                        into caller-owned buffers (the kernels' accumulate flags, no copies);
//                        only q gets a gradient through the graph.
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace moda::ops {

Tensor moda_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& depth_k, const Tensor& depth_v,
                      bool causal = true);

// Where moda_attention_into's backward adds the gradients of k, v, depth_k, depth_v: tensors of
// the same shapes, dtype and device (usually views of gradient buffers laid out like the inputs'
// buffer, e.g. slots of the depth stream's dK, dV). depth_k / depth_v may be undefined when the
// op had no depth entries. The sinks must satisfy the kernels' layout rules above (they cannot be
// copied, the backward writes through them); a sink that does not is an error.
struct GradSinks {
  Tensor k, v, depth_k, depth_v;
};

// The sinks are asked for when the backward runs, not at the forward: the caller can allocate its
// gradient buffers lazily, so they are not live during the forward pass.
using GradSinksFn = std::function<GradSinks()>;

// As moda_attention, but k, v, depth_k and depth_v get no gradient through the graph (they must
// not require grad): the backward returns dq and adds dk, dv, d_depth_k, d_depth_v into sinks().
// `ordering` tensors become extra inputs of the op that receive no gradient. Their only effect: the
// engine runs this backward before the backward of their producers. The depth stream passes the
// tokens of the slots read, so a slot's writer hands out its gradient slice only after every
// reader has added into it.
Tensor moda_attention_into(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& depth_k,
                           const Tensor& depth_v, bool causal, GradSinksFn sinks,
                           const std::vector<Tensor>& ordering = {});

// Cached decoding (forward only, records no graph): q [B,T,Hq,d] holds the tokens at positions
// [q_offset, q_offset + T); k, v [B, q_offset + T, Hk, d] the sequence keys of every position so far
// (usually a prefix of a cache slot, e.g. depth-stream slot views narrowed to the filled length);
// depth_k, depth_v [B,T,L,Hk,d] the depth entries of the T query tokens. Row t attends causally to
// keys 0..q_offset + t and to its own depth entries: with q_offset = 0 this is moda_attention's
// forward. Inputs must not require grad while grad mode is on (use NoGradGuard).
Tensor moda_attention_decode(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& depth_k,
                             const Tensor& depth_v, int64_t q_offset);

}  // namespace moda::ops
