#pragma once
// Global gradient norm and clipping on CUDA (math in kernels/grad_norm_shape.h). Deterministic: every
// buffer is covered by a number of blocks fixed by its size, each block writes a double partial
// sum of squares, and one block adds the partials in a fixed order. No host sync anywhere: the norm
// and the clip factor stay on the device, where scale_grads and adamw_step read them.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"

namespace moda::cuda {

struct GradSpan {
  void* data = nullptr;  // n elements, fp32 or bf16
  int64_t n = 0;
  bool bf16 = false;
};

// norm[0] = sqrt(sum of squares over all spans) (fp32 from a double sum). If clip_scale is not null,
// clip_scale[0] = min(1, max_norm / (norm + 1e-6)) (computed in double). Both device pointers.
void grad_norm(const GradSpan* spans, int64_t count, float* norm, float* clip_scale, double max_norm,
               cudaStream_t stream);

// Convenience for one buffer: the norm as a host double (synchronises the stream).
double grad_norm(const float* g, int64_t n, cudaStream_t stream);
double grad_norm(const bf16* g, int64_t n, cudaStream_t stream);

// Multiplies every span by the device scalar scale[0]; a no-op (no writes) when it is exactly 1.
void scale_grads(const GradSpan* spans, int64_t count, const float* scale, cudaStream_t stream);

// grad_norm then scale_grads by the clip factor; norm and clip_scale are device outputs.
void clip_grad_norm(const GradSpan* spans, int64_t count, double max_norm, float* norm, float* clip_scale,
                    cudaStream_t stream);

}  // namespace moda::cuda
