#include "autograd/function.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/cpu/elementwise.h"
#ifdef MODA_HAVE_CUDA
#include "kernels/cuda/elementwise.h"
#endif

namespace moda {

void accumulate_into(Tensor& acc, const Tensor& g_in) {
  check_same_shape("gradient accumulation", acc, g_in);
  check_same_device("gradient accumulation", acc, g_in);
  MODA_CHECK(acc.is_contiguous(), "gradient accumulation: target ", acc.describe(), " is not contiguous");
  int64_t n = acc.numel();
#ifdef MODA_HAVE_CUDA
  // bf16 gradients into an fp32 accumulator: the mixed kernel converts as it adds (no temporary).
  if (!acc.device().is_cpu() && acc.dtype() == DType::F32 && g_in.dtype() == DType::BF16) {
    const Tensor g = g_in.contiguous();
    cuda::axpy(acc.data<float>(), g.data<bf16>(), 1.0, n, current_stream());
    return;
  }
#endif
  Tensor g = g_in.dtype() == acc.dtype() ? g_in.contiguous() : g_in.to(acc.dtype()).contiguous();
  if (acc.device().is_cpu()) {
    switch (acc.dtype()) {
      case DType::F32: cpu::axpy(acc.data<float>(), g.data<float>(), 1.0, n); return;
      case DType::F64: cpu::axpy(acc.data<double>(), g.data<double>(), 1.0, n); return;
      default: break;
    }
  } else {
#ifdef MODA_HAVE_CUDA
    switch (acc.dtype()) {
      case DType::F32: cuda::axpy(acc.data<float>(), g.data<float>(), 1.0, n, current_stream()); return;
      case DType::BF16: cuda::axpy(acc.data<bf16>(), g.data<bf16>(), 1.0, n, current_stream()); return;
      default: break;
    }
#endif
  }
  MODA_FAIL("gradient accumulation: unsupported ", acc.describe());
}

}  // namespace moda
