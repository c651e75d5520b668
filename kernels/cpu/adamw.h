#pragma once
// One fused AdamW step (decoupled weight decay, bias-corrected moments), PyTorch's formula:
//   p *= 1 - lr * weight_decay
//   m  = beta1 * m + (1 - beta1) * g          v = beta2 * v + (1 - beta2) * g^2      (g = grad * grad_scale)
//   p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// Optionally writes a bf16 copy of the updated p (the weights the bf16 forward pass reads).
#include <cstdint>

#include "core/bf16.h"

namespace moda {

struct AdamWParams {
  double lr = 3e-4;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  int64_t step = 1;  // 1-based count of steps taken, including this one (bias correction)

  void validate(const char* op) const;  // throws moda::Error naming the bad field
};

}  // namespace moda

namespace moda::cpu {

// p, g, m, v: n elements. p_bf16 may be null. grad_scale multiplies g (gradient clipping fused in).
template <typename T>
void adamw_step(const AdamWParams& hp, T* p, const T* g, T* m, T* v, int64_t n, bf16* p_bf16 = nullptr,
                double grad_scale = 1.0);

}  // namespace moda::cpu
