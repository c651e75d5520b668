#pragma once
// Reductions (CPU reference), accumulated in double.
#include <cstdint>

namespace moda::cpu {

template <typename T>
void sum(T* out, const T* x, int64_t n);  // out[0] = sum of x[0..n)
template <typename T>
void mean(T* out, const T* x, int64_t n);  // out[0] = sum / n (n > 0)

// Column sums of a row-major [rows, cols] matrix: out[j] (+)= sum_r x[r, j]. Bias gradients use
// this; `accumulate` adds into out instead of overwriting it (gradient accumulation).
template <typename T>
void sum_rows(T* out, const T* x, int64_t rows, int64_t cols, bool accumulate = false);

}  // namespace moda::cpu
