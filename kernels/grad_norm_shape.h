#pragma once
// Global gradient norm clipping, the rule shared by the CPU (kernels/cpu/grad_norm.h) and CUDA
// (kernels/cuda/grad_norm.h, which applies it on the device) kernels and by nn::AdamW's users:
//   norm  = sqrt(sum over all buffers and elements of g^2)
//   scale = min(1, max_norm / (norm + 1e-6));   every gradient is multiplied by scale.
// No device code: included by .cpp and .cu files.

namespace moda {

// Clipping factor for a given norm (shared so CPU and CUDA agree to the bit in float).
inline float clip_coefficient(double norm, double max_norm) {
  const double s = max_norm / (norm + 1e-6);
  return float(s < 1.0 ? s : 1.0);
}

}  // namespace moda
