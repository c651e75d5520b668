#pragma once
// Plain (unfused, memory-hungry) GQA attention on CUDA, the independent check for the MoDA kernels
// at L = 0; layouts and math as in kernels/cpu/attention_reference.h. It materialises the fp32
// score matrix [B, Hq, T, T] and the probabilities (in the input type) from the caching allocator,
// multiplies with cuBLASLt (fp32 accumulation) and runs a row-wise masked softmax kernel.
#include <cuda_runtime_api.h>

#include "core/bf16.h"
#include "kernels/attention_reference_shape.h"

namespace moda::cuda {

// q [B,T,Hq,d], k, v [B,T,Hk,d] -> out [B,T,Hq,d]; lse [B,Hq,T] fp32 (may be null).
void attention_reference_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* out,
                                 float* lse, cudaStream_t stream);
void attention_reference_forward(const AttentionShape& s, const bf16* q, const bf16* k, const bf16* v, bf16* out,
                                 float* lse, cudaStream_t stream);

// Recomputes the probabilities; writes dq, dk, dv (dk, dv summed over the G query heads in fp32).
void attention_reference_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                                  const float* dout, float* dq, float* dk, float* dv, cudaStream_t stream);
void attention_reference_backward(const AttentionShape& s, const bf16* q, const bf16* k, const bf16* v,
                                  const bf16* dout, bf16* dq, bf16* dk, bf16* dv, cudaStream_t stream);

}  // namespace moda::cuda
