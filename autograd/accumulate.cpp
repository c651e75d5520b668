#include "autograd/dispatch.h"
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
  const int64_t n = acc.numel();
  // The gradient in the accumulator's dtype (a converted copy only when they differ).
  const auto in_acc_dtype = [&] {
    return g_in.dtype() == acc.dtype() ? g_in.contiguous() : g_in.to(acc.dtype()).contiguous();
  };
  ops::dispatch(
      "gradient accumulation", acc,
      [&](auto t) {
        using T = decltype(t);
        const Tensor g = in_acc_dtype();
        cpu::axpy(acc.data<T>(), g.data<T>(), 1.0, n);
      },
      [&](auto t) {
        using T [[maybe_unused]] = decltype(t);  // unused without CUDA
        // bf16 gradients into an fp32 accumulator: the mixed kernel converts as it adds (no temporary).
        MODA_IF_CUDA(const bool mixed = acc.dtype() == DType::F32 && g_in.dtype() == DType::BF16;
                     const Tensor g = mixed ? g_in.contiguous() : in_acc_dtype();
                     if (mixed) cuda::axpy(acc.data<float>(), g.data<bf16>(), 1.0, n, current_stream());
                     else cuda::axpy(acc.data<T>(), g.data<T>(), 1.0, n, current_stream()););
      });
}

}  // namespace moda
