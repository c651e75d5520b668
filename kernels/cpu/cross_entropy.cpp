#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace moda::cpu {

namespace {
template <typename I>
bool is_ignored(I target, int64_t ignore_index, int64_t v, int64_t row, const char* op) {
  const int64_t t = static_cast<int64_t>(target);
  if (t == ignore_index) return true;
  MODA_CHECK(t >= 0 && t < v, op, ": target ", t, " at row ", row, " is outside [0, ", v,
             ") and is not ignore_index=", ignore_index);
  return false;
}
}  // namespace

template <typename T, typename I>
void cross_entropy_forward(const T* logits, const I* targets, T* row_loss, T* lse, T* mean_loss, int64_t* count,
                           int64_t n, int64_t v, int64_t ignore_index) {
  MODA_CHECK(v >= 1, "cross_entropy_forward: vocabulary size must be >= 1, got ", v);
  double total = 0.0;
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* x = logits + i * v;
    double m = -INFINITY;
    for (int64_t j = 0; j < v; ++j) m = std::max(m, double(x[j]));
    double s = 0.0;
    for (int64_t j = 0; j < v; ++j) s += std::exp(double(x[j]) - m);
    const double l = m + std::log(s);
    lse[i] = T(l);
    if (is_ignored(targets[i], ignore_index, v, i, "cross_entropy_forward")) {
      row_loss[i] = T(0);
      continue;
    }
    const double loss = l - double(x[static_cast<int64_t>(targets[i])]);
    row_loss[i] = T(loss);
    total += loss;
    ++kept;
  }
  *mean_loss = T(kept > 0 ? total / double(kept) : 0.0);
  *count = kept;
}

template <typename T, typename I>
void cross_entropy_backward(const T* logits, const I* targets, const T* lse, const T* dloss, const int64_t* count,
                            T* dlogits, int64_t n, int64_t v, int64_t ignore_index) {
  const double scale = *count > 0 ? double(*dloss) / double(*count) : 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const T* x = logits + i * v;
    T* dx = dlogits + i * v;
    if (is_ignored(targets[i], ignore_index, v, i, "cross_entropy_backward")) {
      std::fill_n(dx, v, T(0));
      continue;
    }
    const int64_t t = static_cast<int64_t>(targets[i]);
    const double l = double(lse[i]);
    for (int64_t j = 0; j < v; ++j) dx[j] = T((std::exp(double(x[j]) - l) - (j == t ? 1.0 : 0.0)) * scale);
  }
}

#define MODA_CE_INSTANTIATE(T, I)                                                                                 \
  template void cross_entropy_forward<T, I>(const T*, const I*, T*, T*, T*, int64_t*, int64_t, int64_t, int64_t); \
  template void cross_entropy_backward<T, I>(const T*, const I*, const T*, const T*, const int64_t*, T*, int64_t, \
                                             int64_t, int64_t);
MODA_CE_INSTANTIATE(float, int32_t)
MODA_CE_INSTANTIATE(float, int64_t)
MODA_CE_INSTANTIATE(double, int32_t)
MODA_CE_INSTANTIATE(double, int64_t)

}  // namespace moda::cpu
