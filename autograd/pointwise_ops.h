#pragma once
// Differentiable pointwise and row-wise ops over the kernels in kernels/{cpu,cuda}/{elementwise,
// reduce,rmsnorm,rope,swiglu,softmax}. Every op dispatches on its input's device and dtype: CPU
// runs the reference kernels in f32 or f64 (f64 is what gradcheck uses), CUDA runs the fast kernels
// in f32 or bf16 (fp32 math). Inputs may have any layout (they are made contiguous where a kernel
// needs it); outputs are new contiguous tensors. Errors name the op, the tensor and what was expected.
#include <cstdint>

#include "core/tensor.h"

namespace moda::ops {

Tensor add(const Tensor& a, const Tensor& b);  // same shape, dtype and device
Tensor mul(const Tensor& a, const Tensor& b);  // same shape, dtype and device
Tensor scale(const Tensor& a, double alpha);

// f32 <-> bf16 (CUDA: the rounding kernel; CPU too), f32 <-> f64 (CPU). The gradient is cast back to
// the input's dtype. Casting to the same dtype returns `a` itself.
Tensor cast(const Tensor& a, DType dtype);

// Sum / mean of all elements -> shape {1}; f32 (f64 for f64 input). Deterministic on CUDA.
Tensor sum(const Tensor& a);
Tensor mean(const Tensor& a);

// RMSNorm over the last dim D: x [..., D], weight [D] or undefined (no weight). Returns y like x.
// A weight of another dtype than x (e.g. f32 master weights with bf16 activations) is cast to x's
// dtype for the kernel. On CUDA the weight gradient is f32 (reduced without atomics).
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);

// Rotary embedding on x [B, T, H, d] (rotate-half pairs (i, i + d/2), position = token index +
// position_offset). x may be a strided view (e.g. q or k inside a fused projection) as long as the
// last dim is contiguous.
Tensor rope(const Tensor& x, double theta, int64_t position_offset = 0);

// x [..., 2h] read as [gate | up] halves -> silu(gate) * up, [..., h].
Tensor swiglu(const Tensor& x);

// Softmax over the last dim.
Tensor softmax(const Tensor& x);

}  // namespace moda::ops
