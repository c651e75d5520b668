#include "autograd/function.h"
#include "core/error.h"

namespace moda {

template <typename T>
static void add_loop(int64_t n, const T* g, T* acc) {
  for (int64_t i = 0; i < n; ++i) acc[i] += g[i];
}

void accumulate_into(Tensor& acc, const Tensor& g_in) {
  check_same_shape("gradient accumulation", acc, g_in);
  check_same_device("gradient accumulation", acc, g_in);
  MODA_CHECK(acc.is_contiguous(), "gradient accumulation: target ", acc.describe(), " is not contiguous");
  Tensor g = g_in.dtype() == acc.dtype() ? g_in.contiguous() : g_in.to(acc.dtype()).contiguous();
  int64_t n = acc.numel();
  if (acc.device().is_cpu()) {
    switch (acc.dtype()) {
      case DType::F32: add_loop(n, g.data<float>(), acc.data<float>()); return;
      case DType::F64: add_loop(n, g.data<double>(), acc.data<double>()); return;
      default: break;
    }
  }
  MODA_FAIL("gradient accumulation: unsupported ", acc.describe());
}

}  // namespace moda
