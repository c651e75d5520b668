#pragma once
// Fused AdamW step on CUDA (formula in kernels/adamw_shape.h): one pass over p, g, m, v with 16-byte
// vector accesses, fp32 math; optionally writes the bf16 copy of the updated weights.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"
#include "kernels/adamw_shape.h"

namespace moda::cuda {

// p, m, v fp32 master state; g fp32 or bf16; n elements. p_bf16 may be null. grad_scale may be null
// (1) or point at a device scalar multiplying g, e.g. the clip factor from grad_norm (no host sync).
void adamw_step(const AdamWParams& hp, float* p, const float* g, float* m, float* v, int64_t n, bf16* p_bf16,
                const float* grad_scale, cudaStream_t stream);
void adamw_step(const AdamWParams& hp, float* p, const bf16* g, float* m, float* v, int64_t n, bf16* p_bf16,
                const float* grad_scale, cudaStream_t stream);

// Same with a host-side gradient multiplier (when the clip factor is already known on the host).
void adamw_step(const AdamWParams& hp, float* p, const float* g, float* m, float* v, int64_t n, bf16* p_bf16,
                double grad_scale, cudaStream_t stream);
void adamw_step(const AdamWParams& hp, float* p, const bf16* g, float* m, float* v, int64_t n, bf16* p_bf16,
                double grad_scale, cudaStream_t stream);

}  // namespace moda::cuda
