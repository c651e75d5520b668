#pragma once
// Rotary position embedding on the GPU (float or bf16 storage), same convention as kernels/cpu/rope.h,
// shape and stride structs from kernels/rope_shape.h (rotate-half pairs (i, i + d/2), angle p * theta^(-2i/d) with
// p = token + pos_offset). Angles are formed in double and reduced to [-pi, pi] before a fast fp32
// sincos (absolute error ~4e-7), so large positions lose no accuracy to the angle's rounding. One thread rotates a
// chunk of pairs of one token for every head, so each cos/sin is computed once per token.
// In place (out == in with equal strides) is supported.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"
#include "kernels/rope_shape.h"

namespace moda::cuda {

template <typename T>
void rope_forward(T* out, RopeStrides out_strides, const T* in, RopeStrides in_strides, const RopeShape& shape,
                  cudaStream_t stream);

// dx = rotation of dy by -angle.
template <typename T>
void rope_backward(T* dx, RopeStrides dx_strides, const T* dy, RopeStrides dy_strides, const RopeShape& shape,
                   cudaStream_t stream);

}  // namespace moda::cuda
