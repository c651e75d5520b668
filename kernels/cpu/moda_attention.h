#pragma once
// MoDA attention, CPU reference (obviously right, not fast): every query row forms its scores
// against [causal sequence keys | the L depth keys of its own token], one softmax, float64
// accumulation. Layouts and strides: kernels/moda_attention_shape.h.
//
// forward:  o = softmax(scale * q [K | Kd]^T) [V | Vd];  lse = log-sum-exp of the scaled scores.
// backward: from do, o and lse (P recomputed as exp(scale * s - lse), D = rowsum(do * o)):
//   dS = P * (do . v_j - D);  dq = scale * sum_j dS_j k_j;
//   dk_j, dv_j (sequence) and ddepth_k, ddepth_v (depth) summed over every query row that sees them.
// accumulate_kv / accumulate_depth: add into dk, dv / d_depth_k, d_depth_v instead of overwriting
// (the model's later layers add their depth gradients into one shared buffer). dq is overwritten.
// Depth pointers may be null when L == 0. The forward also serves cached decoding (queries at
// positions q_offset.. of Tk keys, ModaAttentionShape::q_offset); the backward requires aligned().
#include "kernels/moda_attention_shape.h"

namespace moda::cpu {

template <typename T>
void moda_attention_forward(const ModaAttentionShape& s, const T* q, ModaStrides qs, const T* k, ModaStrides ks,
                            const T* v, ModaStrides vs, const T* depth_k, ModaStrides dks, const T* depth_v,
                            ModaStrides dvs, T* o, ModaStrides os, T* lse);

template <typename T>
void moda_attention_backward(const ModaAttentionShape& s, const T* q, ModaStrides qs, const T* k, ModaStrides ks,
                             const T* v, ModaStrides vs, const T* depth_k, ModaStrides dks, const T* depth_v,
                             ModaStrides dvs, const T* o, ModaStrides os, const T* lse, const T* dout, ModaStrides dos,
                             T* dq, ModaStrides dqs, T* dk, ModaStrides dks_out, T* dv, ModaStrides dvs_out,
                             T* d_depth_k, ModaStrides ddks, T* d_depth_v, ModaStrides ddvs, bool accumulate_kv,
                             bool accumulate_depth);

}  // namespace moda::cpu
