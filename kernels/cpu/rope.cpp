#include "kernels/cpu/rope.h"

#include <cmath>
#include <vector>

#include "core/error.h"

namespace moda::cpu {

static void check_shape(const char* op, const RopeShape& s) {
  MODA_CHECK(s.batch >= 0 && s.tokens >= 0 && s.heads >= 0, op, ": negative size (batch=", s.batch,
             ", tokens=", s.tokens, ", heads=", s.heads, ")");
  MODA_CHECK(s.head_dim > 0 && s.head_dim % 2 == 0, op, ": head_dim must be positive and even, got ", s.head_dim);
  MODA_CHECK(s.theta > 0, op, ": theta must be positive, got ", s.theta);
}

// sign = +1 rotates by +a (forward), -1 by -a (backward).
template <typename T>
static void rotate(T* out, RopeStrides os, const T* in, RopeStrides is, const RopeShape& s, double sign) {
  const int64_t half = s.head_dim / 2;
  std::vector<double> inv_freq(half), c(half), sn(half);
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = std::pow(s.theta, -2.0 * static_cast<double>(i) / static_cast<double>(s.head_dim));
  for (int64_t t = 0; t < s.tokens; ++t) {
    const double pos = static_cast<double>(t + s.pos_offset);
    for (int64_t i = 0; i < half; ++i) {
      c[i] = std::cos(pos * inv_freq[i]);
      sn[i] = sign * std::sin(pos * inv_freq[i]);
    }
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.heads; ++h) {
        const T* x = in + b * is.batch + t * is.token + h * is.head;
        T* y = out + b * os.batch + t * os.token + h * os.head;
        for (int64_t i = 0; i < half; ++i) {
          const double x1 = static_cast<double>(x[i]), x2 = static_cast<double>(x[i + half]);
          y[i] = static_cast<T>(x1 * c[i] - x2 * sn[i]);  // both read before either is written
          y[i + half] = static_cast<T>(x2 * c[i] + x1 * sn[i]);
        }
      }
  }
}

template <typename T>
void rope_forward(T* out, RopeStrides out_strides, const T* in, RopeStrides in_strides, const RopeShape& shape) {
  check_shape("rope_forward", shape);
  rotate(out, out_strides, in, in_strides, shape, 1.0);
}

template <typename T>
void rope_backward(T* dx, RopeStrides dx_strides, const T* dy, RopeStrides dy_strides, const RopeShape& shape) {
  check_shape("rope_backward", shape);
  rotate(dx, dx_strides, dy, dy_strides, shape, -1.0);
}

template void rope_forward<float>(float*, RopeStrides, const float*, RopeStrides, const RopeShape&);
template void rope_forward<double>(double*, RopeStrides, const double*, RopeStrides, const RopeShape&);
template void rope_backward<float>(float*, RopeStrides, const float*, RopeStrides, const RopeShape&);
template void rope_backward<double>(double*, RopeStrides, const double*, RopeStrides, const RopeShape&);

}  // namespace moda::cpu
