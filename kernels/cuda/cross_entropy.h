#pragma once
// Cross-entropy fused with log-softmax on CUDA (math in kernels/cpu/cross_entropy.h). One CTA per
// row, 16-byte vector loads, one read of the logits per pass: the forward keeps an online
// (max, sum-exp) pair, the backward recomputes softmax from the saved lse and writes dlogits.
// Targets outside [0, v) that are not ignore_index give a zero loss/gradient row and set a device
// flag that cross_entropy_check_targets() reports.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"

namespace moda::cuda {

// logits [n, v] f32 or bf16; targets [n] int32/int64. Outputs (device, fp32): row_loss [n], lse [n],
// mean_loss [1] (mean over non-ignored rows, 0 if none), count [1] (int64: non-ignored rows).
// The mean is reduced by one block in a fixed order: deterministic.
void cross_entropy_forward(const float* logits, const int32_t* targets, float* row_loss, float* lse, float* mean_loss,
                           int64_t* count, int64_t n, int64_t v, int64_t ignore_index, cudaStream_t stream);
void cross_entropy_forward(const float* logits, const int64_t* targets, float* row_loss, float* lse, float* mean_loss,
                           int64_t* count, int64_t n, int64_t v, int64_t ignore_index, cudaStream_t stream);
void cross_entropy_forward(const bf16* logits, const int32_t* targets, float* row_loss, float* lse, float* mean_loss,
                           int64_t* count, int64_t n, int64_t v, int64_t ignore_index, cudaStream_t stream);
void cross_entropy_forward(const bf16* logits, const int64_t* targets, float* row_loss, float* lse, float* mean_loss,
                           int64_t* count, int64_t n, int64_t v, int64_t ignore_index, cudaStream_t stream);

// dlogits = (softmax - onehot) * dloss[0] / count[0] (zero rows where ignored), same type as logits.
// dloss and count are device scalars (no host sync). dlogits may alias logits (in place).
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, const float* dloss,
                            const int64_t* count, float* dlogits, int64_t n, int64_t v, int64_t ignore_index,
                            cudaStream_t stream);
void cross_entropy_backward(const float* logits, const int64_t* targets, const float* lse, const float* dloss,
                            const int64_t* count, float* dlogits, int64_t n, int64_t v, int64_t ignore_index,
                            cudaStream_t stream);
void cross_entropy_backward(const bf16* logits, const int32_t* targets, const float* lse, const float* dloss,
                            const int64_t* count, bf16* dlogits, int64_t n, int64_t v, int64_t ignore_index,
                            cudaStream_t stream);
void cross_entropy_backward(const bf16* logits, const int64_t* targets, const float* lse, const float* dloss,
                            const int64_t* count, bf16* dlogits, int64_t n, int64_t v, int64_t ignore_index,
                            cudaStream_t stream);

// Synchronises `stream`; throws moda::Error (and clears the flag) if a bad target was seen.
void cross_entropy_check_targets(cudaStream_t stream);

}  // namespace moda::cuda
