#pragma once
// Plain GQA attention, the independent check for the MoDA kernels at L = 0 (no depth entries).
// It forms the whole score matrix, so it is only for tests and small shapes.
//   q [B, T, Hq, d], k, v [B, T, Hk, d], out [B, T, Hq, d]   (row-major, contiguous)
//   query head h reads KV head h / G, G = Hq / Hk
//   out[b, t, h] = sum_j softmax_j(scale * q[b, t, h] . k[b, j, h/G]) v[b, j, h/G]
//   over j <= t when causal, all j otherwise; lse [B, Hq, T] is the log-sum-exp of the scaled scores.
#include <cstdint>

#include "kernels/attention_reference_shape.h"

namespace moda::cpu {

// lse may be null. Accumulates in double.
template <typename T>
void attention_reference_forward(const AttentionShape& s, const T* q, const T* k, const T* v, T* out, T* lse);

// Recomputes the probabilities from q, k (nothing saved); writes (not accumulates) dq, dk, dv.
template <typename T>
void attention_reference_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* dout, T* dq,
                                  T* dk, T* dv);

}  // namespace moda::cpu
