#pragma once
// The one way an op picks its kernel: dispatch(op, t, cpu_fn, cuda_fn) calls cpu_fn(T{}) with
// T = float or double for CPU tensors and cuda_fn(T{}) with T = float or bf16 for CUDA tensors;
// any other device/dtype pair is an error naming the op and the tensor. Wrap the body of cuda_fn
// in MODA_IF_CUDA(...) so that builds without CUDA compile it away (no tensor can live on a GPU
// then, so the CUDA branch never runs), and declare its type `using T [[maybe_unused]] = ...`.
// Ops that accept fewer dtypes check them before calling. dispatch_device(t, cpu_fn, cuda_fn) is
// the same split without the dtype choice, for the few ops whose kernels take two dtypes at once
// (casts); they check their dtype pairs themselves.
#include "core/bf16.h"
#include "core/error.h"
#include "core/tensor.h"

#ifdef MODA_HAVE_CUDA
#define MODA_IF_CUDA(...) __VA_ARGS__
#else
#define MODA_IF_CUDA(...)
#endif

namespace moda::ops {

template <typename CpuFn, typename CudaFn>
void dispatch(const char* op, const Tensor& t, CpuFn&& cpu_fn, CudaFn&& cuda_fn) {
  if (t.device().is_cpu()) {
    if (t.dtype() == DType::F32) return cpu_fn(float{});
    if (t.dtype() == DType::F64) return cpu_fn(double{});
    MODA_FAIL(op, ": ", t.describe(), " is not supported; CPU kernels take f32 or f64");
  }
  if (t.dtype() == DType::F32) return cuda_fn(float{});
  if (t.dtype() == DType::BF16) return cuda_fn(bf16{});
  MODA_FAIL(op, ": ", t.describe(), " is not supported; CUDA kernels take f32 or bf16");
}

template <typename CpuFn, typename CudaFn>
void dispatch_device(const Tensor& t, CpuFn&& cpu_fn, CudaFn&& cuda_fn) {
  if (t.device().is_cpu()) return cpu_fn();
  return cuda_fn();
}

}  // namespace moda::ops
