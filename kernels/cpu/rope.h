#pragma once
// Rotary position embedding (CPU reference) on [batch, tokens, heads, head_dim] views, rotate-half
// convention (Llama / OLMo): for i < d/2 the pair (x[i], x[i + d/2]) is rotated by the angle
//   a(p, i) = p * theta^(-2i/d),   p = token index + pos_offset,
//   out[i] = x[i] cos a - x[i+d/2] sin a,   out[i+d/2] = x[i+d/2] cos a + x[i] sin a.
// Backward is the rotation by -a. Angles and cos/sin are computed in double. q and k are often
// views into a larger projection buffer, so batch/token/head strides are explicit (in elements;
// head_dim must be contiguous). out may equal in (in place) when the strides match.
#include <cstdint>

#include "kernels/rope_shape.h"

namespace moda::cpu {

template <typename T>
void rope_forward(T* out, RopeStrides out_strides, const T* in, RopeStrides in_strides, const RopeShape& shape);

// dx = rotation of dy by -a. dx may equal dy.
template <typename T>
void rope_backward(T* dx, RopeStrides dx_strides, const T* dy, RopeStrides dy_strides, const RopeShape& shape);

}  // namespace moda::cpu
