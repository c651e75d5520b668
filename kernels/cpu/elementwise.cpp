#include "kernels/cpu/elementwise.h"

namespace moda::cpu {

template <typename T>
void add(T* out, const T* a, const T* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename T>
void mul(T* out, const T* a, const T* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}

template <typename T>
void scale(T* out, const T* a, double alpha, int64_t n) {
  const T s = static_cast<T>(alpha);
  for (int64_t i = 0; i < n; ++i) out[i] = s * a[i];
}

template <typename T>
void axpy(T* y, const T* x, double alpha, int64_t n) {
  const T s = static_cast<T>(alpha);
  for (int64_t i = 0; i < n; ++i) y[i] += s * x[i];
}

template <typename T>
void fill(T* out, double value, int64_t n) {
  const T v = static_cast<T>(value);
  for (int64_t i = 0; i < n; ++i) out[i] = v;
}

void cast(bf16* out, const float* in, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = float_to_bf16(in[i]);
}

void cast(float* out, const bf16* in, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
}

#define MODA_INSTANTIATE(T)                              \
  template void add<T>(T*, const T*, const T*, int64_t); \
  template void mul<T>(T*, const T*, const T*, int64_t); \
  template void scale<T>(T*, const T*, double, int64_t); \
  template void axpy<T>(T*, const T*, double, int64_t);  \
  template void fill<T>(T*, double, int64_t);
MODA_INSTANTIATE(float)
MODA_INSTANTIATE(double)
#undef MODA_INSTANTIATE

}  // namespace moda::cpu
