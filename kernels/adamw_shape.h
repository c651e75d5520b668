#pragma once
// The hyper-parameters of one fused AdamW step, shared by the CPU (kernels/cpu/adamw.h) and CUDA
// (kernels/cuda/adamw.h) kernels and by nn::AdamW. The step (decoupled weight decay,
// bias-corrected moments) follows PyTorch's formula:
//   p *= 1 - lr * weight_decay
//   m  = beta1 * m + (1 - beta1) * g          v = beta2 * v + (1 - beta2) * g^2      (g = grad * grad_scale)
//   p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// Optionally writes a bf16 copy of the updated p (the weights the bf16 forward pass reads).
// Plain struct, no device code: included by .cpp and .cu files.
#include <cstdint>

#include "core/error.h"

namespace moda {

struct AdamWParams {
  double lr = 3e-4;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  int64_t step = 1;  // 1-based count of steps taken, including this one (bias correction)

  // Throws moda::Error naming the bad field.
  void validate(const char* op) const {
    MODA_CHECK(step >= 1, op, ": step must be >= 1 (1-based, bias correction), got ", step);
    MODA_CHECK(beta1 >= 0 && beta1 < 1, op, ": beta1 must be in [0, 1), got ", beta1);
    MODA_CHECK(beta2 >= 0 && beta2 < 1, op, ": beta2 must be in [0, 1), got ", beta2);
    MODA_CHECK(eps > 0, op, ": eps must be > 0, got ", eps);
    MODA_CHECK(lr >= 0 && weight_decay >= 0, op, ": lr and weight_decay must be >= 0, got lr=", lr,
               " weight_decay=", weight_decay);
  }
};

}  // namespace moda
