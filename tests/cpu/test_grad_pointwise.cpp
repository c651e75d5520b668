// Differentiable pointwise ops (autograd/pointwise_ops.h) on the CPU: gradients by finite
// differences in f64, forward values against the kernels, and the error messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/pointwise_ops.h"
#include "core/error.h"
#include "tests/test_support.h"

using namespace moda;

using moda::testing::error_of;
using moda::testing::TempDir;

namespace {

Tensor rand64(const Shape& shape, uint64_t seed, bool grad = true) {
  Tensor t = Tensor::uniform(shape, seed, -2.0, 2.0, DType::F64);
  if (grad) t.set_requires_grad(true);
  return t;
}

// Scalar loss <op(x), r> with a fixed random r, so every output element gets its own weight.
Tensor weighted_sum(const Tensor& y, uint64_t seed) { return ops::sum(ops::mul(y, rand64(y.shape(), seed, false))); }

void require_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& in) {
  GradcheckResult r = gradcheck(f, in);
  INFO(r.report);
  REQUIRE(r.ok);
}

}  // namespace

TEST_CASE("pointwise ops: add, mul, scale, sum, mean pass gradcheck", "[cpu][ops][autograd]") {
  Tensor a = rand64({3, 5}, 1), b = rand64({3, 5}, 2);
  require_gradcheck([](const std::vector<Tensor>& x) { return weighted_sum(ops::add(x[0], x[1]), 10); }, {a, b});
  require_gradcheck([](const std::vector<Tensor>& x) { return weighted_sum(ops::mul(x[0], x[1]), 11); }, {a, b});
  require_gradcheck([](const std::vector<Tensor>& x) { return weighted_sum(ops::scale(x[0], -1.75), 12); }, {a});
  require_gradcheck([](const std::vector<Tensor>& x) { return ops::sum(x[0]); }, {a});
  require_gradcheck([](const std::vector<Tensor>& x) { return ops::scale(ops::mean(x[0]), 3.0); }, {a});
  // same tensor on both sides: the two gradient contributions add up
  require_gradcheck([](const std::vector<Tensor>& x) { return ops::sum(ops::mul(x[0], x[0])); }, {a});

  Tensor s = ops::sum(a);
  double ref = 0;
  for (double v : a.to_double_vector()) ref += v;
  CHECK(s.shape() == Shape{1});
  CHECK(s.item() == Approx(ref).epsilon(1e-14));
  CHECK(ops::mean(a).item() == Approx(ref / 15).epsilon(1e-14));
}

TEST_CASE("pointwise ops: cast rounds like the kernel and sends the gradient back in the input dtype",
          "[cpu][ops][autograd]") {
  Tensor x = Tensor::uniform({37}, 3, -3.0, 3.0, DType::F32).set_requires_grad(true);
  Tensor h = ops::cast(x, DType::BF16);
  CHECK(h.dtype() == DType::BF16);
  const auto xv = x.to_float_vector(), hv = h.to_float_vector();
  for (size_t i = 0; i < xv.size(); ++i) REQUIRE(hv[i] == bf16_to_float(float_to_bf16(xv[i])));
  CHECK(ops::cast(x, DType::F32).same_storage(x));

  Tensor r = rand64({37}, 4, false);
  Tensor loss = ops::sum(ops::mul(ops::cast(x, DType::F64), r));
  loss.backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().dtype() == DType::F32);
  const auto g = x.grad().to_double_vector(), rv = r.to_double_vector();
  for (size_t i = 0; i < g.size(); ++i) REQUIRE(g[i] == Approx(rv[i]).epsilon(1e-6));
}

TEST_CASE("pointwise ops: rms_norm with and without weight passes gradcheck", "[cpu][ops][autograd]") {
  Tensor x = rand64({2, 3, 7}, 5), w = rand64({7}, 6);
  require_gradcheck([](const std::vector<Tensor>& in) { return weighted_sum(ops::rms_norm(in[0], in[1], 1e-3), 13); },
                    {x, w});
  require_gradcheck(
      [](const std::vector<Tensor>& in) { return weighted_sum(ops::rms_norm(in[0], Tensor(), 1e-3), 14); }, {x});
  // forward: each row of y has mean square ~1 without weight
  Tensor y = ops::rms_norm(x, Tensor(), 0.0);
  const auto yv = y.to_double_vector();
  for (int r = 0; r < 6; ++r) {
    double ms = 0;
    for (int j = 0; j < 7; ++j) ms += yv[r * 7 + j] * yv[r * 7 + j] / 7;
    CHECK(ms == Approx(1.0).epsilon(1e-12));
  }
  CHECK(error_of([&] { ops::rms_norm(x, rand64({6}, 7), 1e-5); }).find("must have shape [7]") != std::string::npos);
}

TEST_CASE("pointwise ops: rope passes gradcheck, also on a strided view", "[cpu][ops][autograd]") {
  Tensor x = rand64({2, 5, 3, 8}, 8);
  require_gradcheck([](const std::vector<Tensor>& in) { return weighted_sum(ops::rope(in[0], 100.0, 3), 15); }, {x});
  // q inside a fused [B, T, 2*H, d] buffer (heads 2..4 of 6): same values and gradient as a copy.
  Tensor fused = rand64({2, 5, 6, 8}, 9, false);
  Tensor view = fused.narrow(2, 2, 3);
  REQUIRE_FALSE(view.is_contiguous());
  view.set_requires_grad(true);
  Tensor copy = fused.narrow(2, 2, 3).contiguous().set_requires_grad(true);
  Tensor yv = ops::rope(view, 100.0, 0), yc = ops::rope(copy, 100.0, 0);
  const auto a = yv.to_double_vector(), b = yc.to_double_vector();
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == b[i]);
  weighted_sum(yv, 16).backward();
  weighted_sum(yc, 16).backward();
  const auto ga = view.grad().to_double_vector(), gb = copy.grad().to_double_vector();
  for (size_t i = 0; i < ga.size(); ++i) REQUIRE(ga[i] == gb[i]);
  CHECK(error_of([&] { ops::rope(rand64({2, 5, 8}, 10), 100.0); }).find("[B, T, H, d]") != std::string::npos);
  CHECK(error_of([&] { ops::rope(rand64({1, 2, 1, 7}, 10), 100.0); }).find("even") != std::string::npos);
}

TEST_CASE("pointwise ops: swiglu and softmax pass gradcheck", "[cpu][ops][autograd]") {
  Tensor x = rand64({3, 2, 10}, 11);
  require_gradcheck([](const std::vector<Tensor>& in) { return weighted_sum(ops::swiglu(in[0]), 17); }, {x});
  CHECK(ops::swiglu(x).shape() == Shape{3, 2, 5});
  Tensor z = rand64({4, 9}, 12);
  require_gradcheck([](const std::vector<Tensor>& in) { return weighted_sum(ops::softmax(in[0]), 18); }, {z});
  CHECK(ops::sum(ops::softmax(z)).item() == Approx(4.0).epsilon(1e-14));
  CHECK(error_of([&] { ops::swiglu(rand64({3, 7}, 13)); }).find("even") != std::string::npos);
}

TEST_CASE("pointwise ops: unsupported dtypes are named in the error", "[cpu][ops]") {
  Tensor h = Tensor::zeros({4}, DType::BF16);
  const std::string msg = error_of([&] { ops::sum(h); });
  CHECK(msg.find("sum") != std::string::npos);
  CHECK(msg.find("f32 or f64") != std::string::npos);
  CHECK(error_of([&] { ops::add(rand64({2}, 1), rand64({3}, 2)); }).find("shape") != std::string::npos);
}
