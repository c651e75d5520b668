#pragma once
// RMSNorm over the last dim of a row-major [rows, cols] matrix (CPU reference):
//   rstd[r] = 1 / sqrt(mean_j x[r,j]^2 + eps),   y[r,j] = x[r,j] * rstd[r] * w[j]
// Backward, with s[r] = sum_j dy[r,j] w[j] x[r,j]:
//   dx[r,j] = rstd[r] * w[j] dy[r,j] - x[r,j] * rstd[r]^3 * s[r] / cols
//   dw[j]  (+)= sum_r dy[r,j] x[r,j] rstd[r]
// w == nullptr means w = 1 (no weight); dw == nullptr skips the weight gradient.
#include <cstdint>

namespace moda::cpu {

template <typename T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, int64_t rows, int64_t cols, double eps);

// accumulate_dw: add into dw instead of overwriting it (gradient accumulation).
template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* rstd, int64_t rows, int64_t cols,
                      bool accumulate_dw = false);

}  // namespace moda::cpu
