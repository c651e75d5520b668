#include "kernels/cpu/grad_norm.h"

#include <cmath>
#include <vector>

namespace moda::cpu {

template <typename T>
double grad_norm(const T* const* bufs, const int64_t* sizes, int64_t count) {
  double sum = 0.0;
  for (int64_t b = 0; b < count; ++b)
    for (int64_t i = 0; i < sizes[b]; ++i) sum += double(bufs[b][i]) * double(bufs[b][i]);
  return std::sqrt(sum);
}

template <typename T>
void scale_grads(T* data, int64_t n, double scale) {
  for (int64_t i = 0; i < n; ++i) data[i] = T(double(data[i]) * scale);
}

template <typename T>
double clip_grad_norm(T* const* bufs, const int64_t* sizes, int64_t count, double max_norm) {
  std::vector<const T*> cbufs(bufs, bufs + count);
  const double norm = grad_norm<T>(cbufs.data(), sizes, count);
  const double s = clip_coefficient(norm, max_norm);
  if (s < 1.0)
    for (int64_t b = 0; b < count; ++b) scale_grads(bufs[b], sizes[b], s);
  return norm;
}

template double grad_norm<float>(const float* const*, const int64_t*, int64_t);
template double grad_norm<double>(const double* const*, const int64_t*, int64_t);
template void scale_grads<float>(float*, int64_t, double);
template void scale_grads<double>(double*, int64_t, double);
template double clip_grad_norm<float>(float* const*, const int64_t*, int64_t, double);
template double clip_grad_norm<double>(double* const*, const int64_t*, int64_t, double);

}  // namespace moda::cpu
