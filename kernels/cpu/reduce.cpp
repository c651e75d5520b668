#include "kernels/cpu/reduce.h"

#include <vector>

#include "core/error.h"

namespace moda::cpu {

template <typename T>
void sum(T* out, const T* x, int64_t n) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]);
  out[0] = static_cast<T>(acc);
}

template <typename T>
void mean(T* out, const T* x, int64_t n) {
  MODA_CHECK(n > 0, "mean: needs at least one element, got n=", n);
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]);
  out[0] = static_cast<T>(acc / static_cast<double>(n));
}

template <typename T>
void sum_rows(T* out, const T* x, int64_t rows, int64_t cols, bool accumulate) {
  // Row-by-row keeps the reads sequential; one double accumulator per column.
  std::vector<double> acc(static_cast<size_t>(cols), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * cols;
    for (int64_t j = 0; j < cols; ++j) acc[j] += static_cast<double>(row[j]);
  }
  for (int64_t j = 0; j < cols; ++j)
    out[j] = static_cast<T>(accumulate ? static_cast<double>(out[j]) + acc[j] : acc[j]);
}

#define MODA_INSTANTIATE(T)                     \
  template void sum<T>(T*, const T*, int64_t);  \
  template void mean<T>(T*, const T*, int64_t); \
  template void sum_rows<T>(T*, const T*, int64_t, int64_t, bool);
MODA_INSTANTIATE(float)
MODA_INSTANTIATE(double)
#undef MODA_INSTANTIATE

}  // namespace moda::cpu
