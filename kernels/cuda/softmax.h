#pragma once
// Row-wise softmax over the last dim of a row-major [rows, cols] matrix on the GPU (float or bf16
// storage, fp32 math), same formulas as kernels/cpu/softmax.h:
//   y = exp(x - max) / sum exp(x - max),   dx = y * (dy - sum(dy * y)).
// cols <= 16384: each row is held in registers and read once. y may alias x, dx may alias dy.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"

namespace moda::cuda {

template <typename T>
void softmax_forward(T* y, const T* x, int64_t rows, int64_t cols, cudaStream_t stream);

template <typename T>
void softmax_backward(T* dx, const T* y, const T* dy, int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace moda::cuda
