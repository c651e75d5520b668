// Differentiable dense ops (autograd/dense_ops.h) on the CPU in float64: analytic vector-Jacobian
// products from backward() against central finite differences of <seed, f(x)>, and forward values
// against the kernels they wrap.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "autograd/dense_ops.h"
#include "autograd/graph.h"
#include "core/tensor.h"
#include "tests/compare.h"

using moda::DType;
using moda::Shape;
using moda::Tensor;
using moda::test::rel_l2;

namespace {

std::vector<double> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d;
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

Tensor rand_tensor(const Shape& s, uint32_t seed) {
  return Tensor::from_vector(randn(moda::shape_numel(s), seed), s, DType::F64);
}

// For each input with requires_grad: |analytic - numeric| / |numeric| (L2 over its elements) < tol.
void check_vjp(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
               uint32_t seed = 99, double tol = 1e-7) {
  for (auto& x : inputs)
    if (moda::is_floating(x.dtype())) x.set_requires_grad(true);
  Tensor out = f(inputs);
  const std::vector<double> w = randn(out.numel(), seed);
  out.backward(Tensor::from_vector(w, out.shape(), out.dtype()));
  auto dot = [&](const std::vector<Tensor>& xs) {
    moda::NoGradGuard ng;
    const auto o = f(xs).to_double_vector();
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += o[i] * w[i];
    return s;
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!moda::is_floating(inputs[k].dtype())) continue;
    const std::vector<double> base = inputs[k].to_double_vector(), analytic = inputs[k].grad().to_double_vector();
    std::vector<double> numeric(base.size());
    const double h = 1e-6;
    for (size_t i = 0; i < base.size(); ++i) {
      std::vector<Tensor> xs = inputs;
      auto v = base;
      v[i] += h;
      xs[k] = Tensor::from_vector(v, inputs[k].shape(), DType::F64);
      const double up = dot(xs);
      v[i] -= 2 * h;
      xs[k] = Tensor::from_vector(v, inputs[k].shape(), DType::F64);
      numeric[i] = (up - dot(xs)) / (2 * h);
    }
    INFO("input " << k << " " << inputs[k].describe());
    CHECK(rel_l2(analytic, numeric) < tol);
  }
}

}  // namespace

TEST_CASE("dense grad: matmul, every transpose, batched and with a shared 2-D b", "[cpu][autograd]") {
  uint32_t seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t M = 5, N = 4, K = 3;
      const Shape as = ta ? Shape{K, M} : Shape{M, K}, bs = tb ? Shape{N, K} : Shape{K, N};
      INFO("trans_a=" << ta << " trans_b=" << tb);
      auto f = [&](const std::vector<Tensor>& x) { return moda::ops::matmul(x[0], x[1], ta, tb); };
      check_vjp(f, {rand_tensor(as, seed++), rand_tensor(bs, seed++)});
      Shape ab = as, bb = bs;
      ab.insert(ab.begin(), {2, 3});
      bb.insert(bb.begin(), {2, 3});
      check_vjp(f, {rand_tensor(ab, seed++), rand_tensor(bb, seed++)});  // batched both
      check_vjp(f, {rand_tensor(ab, seed++), rand_tensor(bs, seed++)});  // shared b
    }
  Tensor a = rand_tensor({2, 5, 3}, 50), b = rand_tensor({3, 4}, 51);
  Tensor c = moda::ops::matmul(a, b);
  CHECK(c.shape() == Shape{2, 5, 4});
  const auto av = a.to_double_vector(), bv = b.to_double_vector(), cv = c.to_double_vector();
  double s = 0;
  for (int k = 0; k < 3; ++k) s += av[(1 * 5 + 2) * 3 + k] * bv[k * 4 + 3];
  CHECK(cv[(1 * 5 + 2) * 4 + 3] == Approx(s).epsilon(1e-14));
  CHECK_THROWS_WITH(moda::ops::matmul(a, rand_tensor({4, 4}, 52)), Catch::Contains("inner sizes differ"));
}

TEST_CASE("dense grad: linear with and without bias", "[cpu][autograd]") {
  auto with_bias = [](const std::vector<Tensor>& x) { return moda::ops::linear(x[0], x[1], x[2]); };
  auto no_bias = [](const std::vector<Tensor>& x) { return moda::ops::linear(x[0], x[1]); };
  check_vjp(with_bias, {rand_tensor({2, 3, 7}, 10), rand_tensor({5, 7}, 11), rand_tensor({5}, 12)});
  check_vjp(no_bias, {rand_tensor({4, 7}, 13), rand_tensor({6, 7}, 14)});
  Tensor y = moda::ops::linear(rand_tensor({2, 3, 7}, 10), rand_tensor({5, 7}, 11), rand_tensor({5}, 12));
  CHECK(y.shape() == Shape{2, 3, 5});
  CHECK_THROWS_WITH(moda::ops::linear(rand_tensor({2, 6}, 1), rand_tensor({5, 7}, 2)), Catch::Contains("does not fit"));
}

TEST_CASE("dense grad: embedding with repeated ids", "[cpu][autograd]") {
  Tensor ids = Tensor::from_ints({3, 1, 3, 0, 6, 3}, {2, 3}, DType::I32);
  auto f = [&](const std::vector<Tensor>& x) { return moda::ops::embedding(x[0], ids); };
  check_vjp(f, {rand_tensor({7, 4}, 20)});
  Tensor out = moda::ops::embedding(rand_tensor({7, 4}, 20), ids);
  CHECK(out.shape() == Shape{2, 3, 4});
  Tensor bad = Tensor::from_ints({7}, {1}, DType::I64);
  CHECK_THROWS_WITH(moda::ops::embedding(rand_tensor({7, 4}, 20), bad), Catch::Contains("token id 7"));
}

TEST_CASE("dense grad: cross-entropy with ignored rows", "[cpu][autograd]") {
  Tensor targets = Tensor::from_ints({2, -100, 0, 4, 4}, {5}, DType::I64);
  auto f = [&](const std::vector<Tensor>& x) { return moda::ops::cross_entropy(x[0], targets, -100); };
  check_vjp(f, {rand_tensor({5, 6}, 30)});
  Tensor loss = moda::ops::cross_entropy(rand_tensor({5, 6}, 30), targets, -100);
  CHECK(loss.shape() == Shape{1});
  CHECK(std::isfinite(loss.item()));
}

TEST_CASE("dense grad: reference attention, causal and full, G = 3", "[cpu][autograd]") {
  for (bool causal : {true, false}) {
    auto f = [&](const std::vector<Tensor>& x) { return moda::ops::attention_reference(x[0], x[1], x[2], causal); };
    check_vjp(f, {rand_tensor({1, 5, 3, 4}, 40), rand_tensor({1, 5, 1, 4}, 41), rand_tensor({1, 5, 1, 4}, 42)});
  }
}

TEST_CASE("dense grad: a small chain embedding -> linear -> cross-entropy", "[cpu][autograd]") {
  Tensor ids = Tensor::from_ints({1, 4, 2, 1}, {4}, DType::I64), targets = Tensor::from_ints({0, 2, 3, 1}, {4});
  auto f = [&](const std::vector<Tensor>& x) {
    return moda::ops::cross_entropy(moda::ops::linear(moda::ops::embedding(x[0], ids), x[1], x[2]), targets);
  };
  check_vjp(f, {rand_tensor({5, 3}, 60), rand_tensor({4, 3}, 61), rand_tensor({4}, 62)});
}
