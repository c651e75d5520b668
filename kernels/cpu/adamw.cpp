#include "kernels/cpu/adamw.h"

#include <cmath>

#include "core/error.h"

namespace moda::cpu {

template <typename T>
void adamw_step(const AdamWParams& hp, T* p, const T* g, T* m, T* v, int64_t n, bf16* p_bf16, double grad_scale) {
  hp.validate("adamw_step");
  const double decay = 1.0 - hp.lr * hp.weight_decay;
  const double step_size = hp.lr / (1.0 - std::pow(hp.beta1, double(hp.step)));
  const double inv_sqrt_bc2 = 1.0 / std::sqrt(1.0 - std::pow(hp.beta2, double(hp.step)));
  for (int64_t i = 0; i < n; ++i) {
    const double gi = double(g[i]) * grad_scale;
    const double mi = hp.beta1 * double(m[i]) + (1.0 - hp.beta1) * gi;
    const double vi = hp.beta2 * double(v[i]) + (1.0 - hp.beta2) * gi * gi;
    const double pi = double(p[i]) * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + hp.eps);
    m[i] = T(mi), v[i] = T(vi), p[i] = T(pi);
    if (p_bf16) p_bf16[i] = float_to_bf16(float(p[i]));
  }
}

template void adamw_step<float>(const AdamWParams&, float*, const float*, float*, float*, int64_t, bf16*, double);
template void adamw_step<double>(const AdamWParams&, double*, const double*, double*, double*, int64_t, bf16*, double);

}  // namespace moda::cpu
