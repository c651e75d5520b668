#pragma once
// Differentiable dense ops over kernels/{cpu,cuda}/{matmul,embedding,cross_entropy,attention_reference}.
// Devices and dtypes: CPU f32/f64 (f64 for gradient checks), CUDA f32/bf16 with fp32 accumulation.
// All inputs of one op share a device. Inputs may be strided (made contiguous first).
#include <cstdint>

#include "core/tensor.h"

namespace moda::ops {

// a [..., M, K] (or [..., K, M] if trans_a), b [..., K, N] (or [..., N, K] if trans_b) with the same
// leading dims, or b 2-D (one matrix shared by the whole batch) -> [..., M, N], dtype of a.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// x [..., in], weight [out, in], bias [out] or undefined -> x weight^T + bias, [..., out].
// CUDA adds the bias in the GEMM epilogue; the bias gradient is a column sum with fp32 accumulation.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// table [V, D], ids int32/int64 of any shape -> [ids..., D]. Out-of-range ids throw on the CPU; on
// CUDA they give zero rows and set a flag that cuda::embedding_check_ids() reports (one sync: call it
// where one is acceptable). The table gradient is accumulated in fp32 and deterministic.
Tensor embedding(const Tensor& table, const Tensor& ids);

// logits [N, V] (CPU f32/f64, CUDA f32/bf16), targets [N] int32/int64 -> mean loss over the rows whose
// target is not ignore_index, shape {1}: f32 (f64 for f64 logits). 0 (and zero gradient) if all rows
// are ignored. Saves the per-row log-sum-exp; the backward writes dlogits in one fused pass.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -1);

// Plain causal (or full) GQA attention, q [B,T,Hq,d], k, v [B,T,Hk,d] -> [B,T,Hq,d], scale 1/sqrt(d).
// Materialises the [B,Hq,T,T] scores: a reference for tests, not for training.
Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = true);

}  // namespace moda::ops
