#pragma once
// Shape and stride descriptors shared by the CPU reference and the CUDA kernels of MoDA attention
// (docs/attention-kernels.md). Plain structs, no device code: included by .cpp and .cu files.
//
//   q        [B, T, Hq, d]        o, dq the same layout (own strides)
//   k, v     [B, T, Hk, d]        sequence keys / values (may be views into the depth stream)
//   depth_k  [B, T, L, Hk, d]     depth keys / values of token t: slots 0..L-1, usually a view
//   depth_v                       into the depth-stream buffer [B, T, S, Hk, d] (token stride S*Hk*d)
//   lse      [B, Hq, T]           log-sum-exp of the scaled scores per query row (contiguous)
// For cached decoding k, v hold Tk >= T tokens and the queries sit at positions q_offset.. of them
// (forward only; see ModaAttentionShape::q_offset).
// Query head h reads KV head h / G with G = Hq / Hk. Row (b, t, h) attends to sequence keys
// 0..t (all T keys when !causal) and to the L depth keys of its own token t, under one softmax.
// The innermost (d) dimension is always contiguous; every other stride is given in elements.
#include <cmath>
#include <cstdint>

#include "core/error.h"

namespace moda {

struct ModaAttentionShape {
  int64_t B = 1, T = 0, Hq = 1, Hk = 1, L = 0, d = 0;
  bool causal = true;
  double scale = 0.0;  // softmax scale applied to q.k; 0 means 1 / sqrt(d)
  // Cached decoding (forward only): the T query tokens are positions [q_offset, q_offset + T) of a
  // key sequence of Tk tokens (0 means Tk = T). Query t then sees keys 0..q_offset + t (causal) or
  // all Tk keys, and the depth keys of ITS token (the depth tensors hold the T query tokens only).
  int64_t q_offset = 0, Tk = 0;

  int64_t group() const { return Hq / Hk; }
  int64_t keys() const { return Tk > 0 ? Tk : T; }
  // Queries and keys cover the same positions: the only form the backward passes support.
  bool aligned() const { return q_offset == 0 && keys() == T; }
  double softmax_scale() const { return scale != 0.0 ? scale : 1.0 / std::sqrt(double(d)); }

  // Throws moda::Error naming the field and what was expected.
  void validate(const char* op) const {
    MODA_CHECK(B >= 1 && T >= 1 && d >= 1, op, ": B, T and d must be >= 1, got B=", B, " T=", T, " d=", d);
    MODA_CHECK(Hk >= 1 && Hq >= Hk && Hq % Hk == 0, op, ": Hq=", Hq, " must be a positive multiple of Hk=", Hk);
    MODA_CHECK(L >= 0, op, ": number of depth entries L must be >= 0, got ", L);
    MODA_CHECK(q_offset >= 0 && Tk >= 0, op, ": q_offset and Tk must be >= 0, got q_offset=", q_offset, " Tk=", Tk);
    MODA_CHECK(q_offset + T <= keys(), op, ": queries at positions [", q_offset, ", ", q_offset + T,
               ") need that many keys, got Tk=", keys());
  }
};

// Strides in elements. `slot` is used by the depth tensors only (stride between depth entries of
// one token); for [B, T, H, d] tensors it is ignored.
struct ModaStrides {
  int64_t batch = 0, token = 0, slot = 0, head = 0;
};

// Strides of a contiguous [B, T, H, d] tensor.
inline ModaStrides moda_strides_bthd(int64_t T, int64_t H, int64_t d) { return ModaStrides{T * H * d, H * d, 0, d}; }

// Strides of slots [first, first + L) viewed inside a contiguous depth-stream buffer
// [B, T, S, Hk, d] (the caller offsets the base pointer by first * Hk * d).
inline ModaStrides moda_strides_depth(int64_t T, int64_t S, int64_t Hk, int64_t d) {
  return ModaStrides{T * S * Hk * d, S * Hk * d, Hk * d, d};
}

// Strides of slot `s` of the depth-stream buffer viewed as a [B, T, Hk, d] sequence tensor
// (the caller offsets the base pointer by s * Hk * d).
inline ModaStrides moda_strides_stream_slot(int64_t T, int64_t S, int64_t Hk, int64_t d) {
  return ModaStrides{T * S * Hk * d, S * Hk * d, 0, d};
}

}  // namespace moda
