#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/graph.h"
#include "core/error.h"

namespace moda {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                          double eps, double atol, double rtol) {
  for (auto& x : inputs) {
    MODA_CHECK(x.device().is_cpu() && x.dtype() == DType::F64 && x.is_contiguous(), "gradcheck: input ", x.describe(),
               " must be a contiguous f64 CPU tensor");
    if (x.requires_grad()) x.zero_grad();
  }
  Tensor out = f(inputs);
  MODA_CHECK(out.numel() == 1, "gradcheck: function returned ", out.describe(), ", expected a scalar");
  out.backward();

  GradcheckResult result;
  NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    std::vector<double> analytic =
        x.grad().defined() ? x.grad().to_double_vector() : std::vector<double>(x.numel(), 0.0);
    double* data = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double saved = data[i];
      data[i] = saved + eps;
      double plus = f(inputs).item();
      data[i] = saved - eps;
      double minus = f(inputs).item();
      data[i] = saved;
      double numeric = (plus - minus) / (2 * eps);
      double err = std::abs(analytic[i] - numeric);
      double rel = err / std::max(std::abs(numeric), 1e-12);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (err > atol) result.max_rel_error = std::max(result.max_rel_error, rel);
      if (!(err <= atol + rtol * std::abs(numeric)) && result.ok) {
        result.ok = false;
        result.report = detail::concat("input ", k, " (", x.describe(), ") element ", i, ": analytic ", analytic[i],
                                       " vs numeric ", numeric);
      }
    }
  }
  return result;
}

}  // namespace moda
