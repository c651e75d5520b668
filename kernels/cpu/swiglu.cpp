#include "kernels/cpu/swiglu.h"

#include <cmath>

namespace moda::cpu {

template <typename T>
void swiglu_forward(T* out, const T* in, int64_t rows, int64_t hidden) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* gate = in + r * 2 * hidden;
    const T* up = gate + hidden;
    for (int64_t i = 0; i < hidden; ++i) {
      const double g = static_cast<double>(gate[i]);
      const double s = 1.0 / (1.0 + std::exp(-g));
      out[r * hidden + i] = static_cast<T>(g * s * static_cast<double>(up[i]));
    }
  }
}

template <typename T>
void swiglu_backward(T* d_in, const T* d_out, const T* in, int64_t rows, int64_t hidden) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* gate = in + r * 2 * hidden;
    const T* up = gate + hidden;
    T* d_gate = d_in + r * 2 * hidden;
    T* d_up = d_gate + hidden;
    for (int64_t i = 0; i < hidden; ++i) {
      const double g = static_cast<double>(gate[i]), u = static_cast<double>(up[i]);
      const double d = static_cast<double>(d_out[r * hidden + i]);
      const double s = 1.0 / (1.0 + std::exp(-g));
      d_gate[i] = static_cast<T>(d * u * s * (1.0 + g * (1.0 - s)));  // in may alias d_in: read first
      d_up[i] = static_cast<T>(d * g * s);
    }
  }
}

template void swiglu_forward<float>(float*, const float*, int64_t, int64_t);
template void swiglu_forward<double>(double*, const double*, int64_t, int64_t);
template void swiglu_backward<float>(float*, const float*, const float*, int64_t, int64_t);
template void swiglu_backward<double>(double*, const double*, const double*, int64_t, int64_t);

}  // namespace moda::cpu
