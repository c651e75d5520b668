#pragma once
// The shape of plain GQA attention, shared by the CPU reference (kernels/cpu/attention_reference.h)
// and its CUDA twin (kernels/cuda/attention_reference.h):
//   q [B, T, Hq, d], k, v [B, T, Hk, d], out [B, T, Hq, d]   (row-major, contiguous)
//   query head h reads KV head h / G, G = Hq / Hk
// Plain struct, no device code: included by .cpp and .cu files.
#include <cmath>
#include <cstdint>

#include "core/error.h"

namespace moda {

struct AttentionShape {
  int64_t batch = 1, seq = 0, heads_q = 1, heads_kv = 1, head_dim = 0;
  bool causal = true;
  double scale = 0.0;  // 0 means 1 / sqrt(head_dim)

  double softmax_scale() const { return scale != 0.0 ? scale : 1.0 / std::sqrt(double(head_dim)); }
  // Throws moda::Error naming the bad field.
  void validate(const char* op) const {
    MODA_CHECK(batch >= 1 && seq >= 1 && head_dim >= 1, op, ": batch, seq and head_dim must be >= 1, got batch=", batch,
               " seq=", seq, " head_dim=", head_dim);
    MODA_CHECK(heads_kv >= 1 && heads_q >= heads_kv && heads_q % heads_kv == 0, op, ": heads_q=", heads_q,
               " must be a positive multiple of heads_kv=", heads_kv);
  }
};

}  // namespace moda
