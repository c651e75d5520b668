#pragma once
// Cross-entropy fused with log-softmax over rows of logits [n, v]:
//   lse[i]      = log sum_j exp(logits[i, j])
//   row_loss[i] = lse[i] - logits[i, targets[i]]      (0 for rows whose target is ignore_index)
//   mean_loss   = sum_i row_loss[i] / count,  count = number of rows not ignored (mean 0 if count 0)
// Backward: dlogits[i, j] = (exp(logits[i, j] - lse[i]) - [j == targets[i]]) * dloss / count, and 0 on
// ignored rows. Every target must be ignore_index or lie in [0, v) (checked: moda::Error names it).
#include <cstdint>

namespace moda::cpu {

// Scalars (mean_loss, count) are single-element outputs, like on CUDA. Sums run in double.
template <typename T, typename I>
void cross_entropy_forward(const T* logits, const I* targets, T* row_loss, T* lse, T* mean_loss, int64_t* count,
                           int64_t n, int64_t v, int64_t ignore_index = -1);

// dloss: gradient of mean_loss (one element); count from the forward pass. dlogits may alias logits.
template <typename T, typename I>
void cross_entropy_backward(const T* logits, const I* targets, const T* lse, const T* dloss, const int64_t* count,
                            T* dlogits, int64_t n, int64_t v, int64_t ignore_index = -1);

}  // namespace moda::cpu
