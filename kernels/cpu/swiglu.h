#pragma once
// Fused SwiGLU (CPU reference). The input row of length 2h holds the two halves of one fused
// projection: [ gate (h) | up (h) ], i.e. in[r, 0..h) = gate, in[r, h..2h) = up. Then
//   out[r, i] = silu(gate) * up,  silu(g) = g * sigmoid(g)
// Backward (s = sigmoid(g)):
//   d_gate = dout * up * s * (1 + g (1 - s)),   d_up = dout * silu(g)   -> d_in [rows, 2h]
#include <cstdint>

namespace moda::cpu {

template <typename T>
void swiglu_forward(T* out, const T* in, int64_t rows, int64_t hidden);

template <typename T>
void swiglu_backward(T* d_in, const T* d_out, const T* in, int64_t rows, int64_t hidden);

}  // namespace moda::cpu
