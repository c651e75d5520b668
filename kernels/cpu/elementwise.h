#pragma once
// Pointwise arithmetic over n contiguous elements (CPU reference). Argument order everywhere in
// kernels/: outputs first, then inputs, then sizes. Out may alias an input (each element is read
// before it is written). Backward needs no kernels of its own: d(a+b) passes the gradient through,
// d(a*b)/da = mul by b, d(alpha*a)/da = scale by alpha, and gradients are summed with axpy.
#include <cstdint>

#include "core/bf16.h"

namespace moda::cpu {

template <typename T>
void add(T* out, const T* a, const T* b, int64_t n);  // out = a + b
template <typename T>
void mul(T* out, const T* a, const T* b, int64_t n);  // out = a * b
template <typename T>
void scale(T* out, const T* a, double alpha, int64_t n);  // out = alpha * a
template <typename T>
void axpy(T* y, const T* x, double alpha, int64_t n);  // y += alpha * x
template <typename T>
void fill(T* out, double value, int64_t n);

// Rounds to nearest even, like the GPU. NaN stays NaN.
void cast(bf16* out, const float* in, int64_t n);
void cast(float* out, const bf16* in, int64_t n);

}  // namespace moda::cpu
