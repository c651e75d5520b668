#pragma once
// Fused RMSNorm over the last dim of a row-major [rows, cols] matrix on the GPU (float or bf16
// storage, fp32 math). Same formulas as kernels/cpu/rmsnorm.h:
//   rstd[r] = 1 / sqrt(mean_j x[r,j]^2 + eps),   y = x * rstd * w
// The forward saves rstd (fp32, one per row) for the backward. w == nullptr means no weight;
// dw == nullptr skips the weight gradient. cols <= 16384 (rows live in registers: read once).
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"

namespace moda::cuda {

template <typename T>
void rmsnorm_forward(T* y, float* rstd, const T* x, const T* w, int64_t rows, int64_t cols, double eps,
                     cudaStream_t stream);

// dw (fp32) is reduced deterministically: per-block partial sums, then a column reduction
// (no atomics). accumulate_dw adds into dw instead of overwriting it.
template <typename T>
void rmsnorm_backward(T* dx, float* dw, const T* dy, const T* x, const T* w, const float* rstd, int64_t rows,
                      int64_t cols, bool accumulate_dw, cudaStream_t stream);

}  // namespace moda::cuda
