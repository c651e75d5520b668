#include "kernels/cpu/rmsnorm.h"

#include <cmath>
#include <vector>

#include "core/error.h"

namespace moda::cpu {

template <typename T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, int64_t rows, int64_t cols, double eps) {
  MODA_CHECK(cols > 0, "rmsnorm_forward: cols must be positive, got ", cols);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    double ss = 0.0;
    for (int64_t j = 0; j < cols; ++j) ss += static_cast<double>(xr[j]) * static_cast<double>(xr[j]);
    const double rs = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
    for (int64_t j = 0; j < cols; ++j)
      yr[j] = static_cast<T>(static_cast<double>(xr[j]) * rs * (w ? static_cast<double>(w[j]) : 1.0));
    if (rstd) rstd[r] = static_cast<T>(rs);
  }
}

template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* rstd, int64_t rows, int64_t cols,
                      bool accumulate_dw) {
  MODA_CHECK(cols > 0, "rmsnorm_backward: cols must be positive, got ", cols);
  std::vector<double> dw_acc(dw ? static_cast<size_t>(cols) : 0, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    const double rs = static_cast<double>(rstd[r]);
    double s = 0.0;
    for (int64_t j = 0; j < cols; ++j)
      s += static_cast<double>(dyr[j]) * (w ? static_cast<double>(w[j]) : 1.0) * static_cast<double>(xr[j]);
    const double k = rs * rs * rs * s / static_cast<double>(cols);
    for (int64_t j = 0; j < cols; ++j) {
      const double wj = w ? static_cast<double>(w[j]) : 1.0;
      const double xj = static_cast<double>(xr[j]), gj = static_cast<double>(dyr[j]);
      if (dx) dx[r * cols + j] = static_cast<T>(rs * wj * gj - xj * k);
      if (dw) dw_acc[j] += gj * xj * rs;
    }
  }
  if (dw)
    for (int64_t j = 0; j < cols; ++j)
      dw[j] = static_cast<T>(accumulate_dw ? static_cast<double>(dw[j]) + dw_acc[j] : dw_acc[j]);
}

#define MODA_INSTANTIATE(T)                                                               \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, double); \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t, bool);
MODA_INSTANTIATE(float)
MODA_INSTANTIATE(double)
#undef MODA_INSTANTIATE

}  // namespace moda::cpu
