#pragma once
// Fused SwiGLU on the GPU (float or bf16 storage, fp32 math). Layout as in kernels/cpu/swiglu.h:
// each input row of 2h elements is [ gate (h) | up (h) ]; out[r, i] = silu(gate) * up, [rows, h].
// Backward writes d_in [rows, 2h] = [ d_gate | d_up ]. d_in may alias in.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"

namespace moda::cuda {

template <typename T>
void swiglu_forward(T* out, const T* in, int64_t rows, int64_t hidden, cudaStream_t stream);

template <typename T>
void swiglu_backward(T* d_in, const T* d_out, const T* in, int64_t rows, int64_t hidden, cudaStream_t stream);

}  // namespace moda::cuda
