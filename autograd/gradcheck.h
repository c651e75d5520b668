#pragma once
// Gradient checking by central finite differences in float64 on the CPU.
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moda {

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0, max_rel_error = 0;
  std::string report;  // names the input and element of the worst mismatch
};

// `f` maps the inputs (f64 CPU tensors; those to check require grad) to a scalar tensor. For every
// element of every input that requires grad, compares the analytic gradient from backward() with
// (f(x+h) - f(x-h)) / 2h. An element passes when |a - n| <= atol + rtol * |n|.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                          double eps = 1e-6, double atol = 1e-6, double rtol = 1e-4);

}  // namespace moda
