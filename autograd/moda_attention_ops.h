#pragma once
// Differentiable MoDA attention (kernels/cpu/moda_attention.h, kernels/cuda/moda_attention.h).
//   q [B,T,Hq,d], k, v [B,T,Hk,d], depth_k, depth_v [B,T,L,Hk,d] -> o [B,T,Hq,d]
// Row (b, t, h) attends, under one softmax with scale 1/sqrt(d), to the sequence keys 0..t
// (all keys when !causal) of KV head h / (Hq/Hk) and to the L depth keys of its own token t.
// Every input may be a strided view (e.g. slots of the depth-stream buffer [B,T,S,Hk,d]); views
// whose innermost dim is not contiguous (or, on CUDA, whose strides are not multiples of 8) are
// copied first. depth_k / depth_v may be undefined or have L = 0 (plain causal GQA attention).
// Devices and dtypes: CPU f32 / f64 (float64 accumulation); CUDA bf16 (fp32 accumulation, fused
// kernels; d in {64, 128}, Hq/Hk <= 32). The backward returns fresh gradients (the autograd engine
// adds them where the inputs came from); the forward saves o and the per-row log-sum-exp.
#include "core/tensor.h"

namespace moda::ops {

Tensor moda_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& depth_k, const Tensor& depth_v,
                      bool causal = true);

}  // namespace moda::ops
