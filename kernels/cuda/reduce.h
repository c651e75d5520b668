#pragma once
// Deterministic reductions on the GPU: no float atomics, so the same input on the same device gives
// the same bits every run. Inputs float or bf16; results are written as fp32 to device memory.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"

namespace moda::cuda {

// out[0] = sum of x[0..n), accumulated in double: per-block partials, then one block adds them in a
// fixed order. `out` is a device pointer; nothing is synchronised with the host.
template <typename T>
void sum(float* out, const T* x, int64_t n, cudaStream_t stream);
template <typename T>
void mean(float* out, const T* x, int64_t n, cudaStream_t stream);  // n > 0

// Column sums of a row-major [rows, cols] matrix: out[j] (+)= sum_r x[r, j] (bias gradients).
// fp32 accumulation; large inputs are split into row chunks whose partial sums are reduced again.
template <typename T>
void sum_rows(float* out, const T* x, int64_t rows, int64_t cols, bool accumulate, cudaStream_t stream);

}  // namespace moda::cuda
