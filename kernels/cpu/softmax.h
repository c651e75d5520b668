#pragma once
// Row-wise softmax over the last dim of a row-major [rows, cols] matrix (CPU reference):
//   y[r, j] = exp(x[r, j] - max_k x[r, k]) / sum_k exp(x[r, k] - max_k x[r, k])
// Backward: dx = y * (dy - sum_k dy[r, k] y[r, k]). Rows of all -inf give NaN, like PyTorch.
#include <cstdint>

namespace moda::cpu {

template <typename T>
void softmax_forward(T* y, const T* x, int64_t rows, int64_t cols);

template <typename T>
void softmax_backward(T* dx, const T* y, const T* dy, int64_t rows, int64_t cols);

}  // namespace moda::cpu
