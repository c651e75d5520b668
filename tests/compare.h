#pragma once
// The error measures every test uses to compare a result with an independently computed reference.
// One definition, so that "rel. error < 1e-5" means the same thing in every test file.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/bf16.h"
#include "core/tensor.h"

namespace moda::test {

template <typename T>
requires std::is_arithmetic_v<T>
double as_double(T v) { return static_cast<double>(v); }
inline double as_double(bf16 v) { return bf16_to_float(v); }

// Relative L2 error ||out - ref|| / ||ref|| (absolute when ref is all zeros). A NaN in one but not
// the other at the same position, or a size mismatch, gives +inf, so a `< tol` check never passes
// on garbage; NaN in both at the same position counts as equal (kernels that must propagate NaN).
template <typename A, typename B>
double rel_l2(const std::vector<A>& out, const std::vector<B>& ref) {
  if (out.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double o = as_double(out[i]), r = as_double(ref[i]);
    if (std::isnan(o) != std::isnan(r)) return std::numeric_limits<double>::infinity();
    if (std::isnan(r)) continue;
    num += (o - r) * (o - r);
    den += r * r;
  }
  return std::sqrt(num / (den > 0 ? den : 1.0));
}

// Tensors: element by element in logical order (any device, dtype or strides).
inline double rel_l2(const Tensor& out, const Tensor& ref) {
  return rel_l2(out.to_double_vector(), ref.to_double_vector());
}

// Largest |out - ref| over all elements; +inf on a size mismatch or a NaN in either.
template <typename A, typename B>
double max_abs_diff(const std::vector<A>& out, const std::vector<B>& ref) {
  if (out.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double m = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double e = std::abs(as_double(out[i]) - as_double(ref[i]));
    if (std::isnan(e)) return std::numeric_limits<double>::infinity();
    m = std::max(m, e);
  }
  return m;
}

inline double max_abs_diff(const Tensor& out, const Tensor& ref) {
  return max_abs_diff(out.to_double_vector(), ref.to_double_vector());
}

}  // namespace moda::test
