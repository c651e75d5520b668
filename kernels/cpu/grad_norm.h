#pragma once
// Global gradient norm over many buffers and norm clipping:
//   norm  = sqrt(sum over all buffers and elements of g^2)
//   scale = min(1, max_norm / (norm + 1e-6));   every gradient is multiplied by scale.
#include <cstdint>

#include "kernels/grad_norm_shape.h"

namespace moda::cpu {

// bufs[i] holds sizes[i] elements; sums in double.
template <typename T>
double grad_norm(const T* const* bufs, const int64_t* sizes, int64_t count);

// Multiplies n elements by scale.
template <typename T>
void scale_grads(T* data, int64_t n, double scale);

// Computes the norm, scales every buffer by clip_coefficient(norm, max_norm), returns the norm (before clipping).
template <typename T>
double clip_grad_norm(T* const* bufs, const int64_t* sizes, int64_t count, double max_norm);

}  // namespace moda::cpu
