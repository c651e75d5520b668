// Differentiable MoDA attention (autograd/moda_attention_ops.h) on the CPU: gradcheck in f64,
// strided depth-stream views against contiguous copies, the L = 0 / undefined-depth forms, errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/moda_attention_ops.h"
#include "autograd/pointwise_ops.h"
#include "core/error.h"

using namespace moda;

namespace {

Tensor rand64(const Shape& shape, uint64_t seed, bool grad = true) {
  Tensor t = Tensor::uniform(shape, seed, -1.5, 1.5, DType::F64);
  if (grad) t.set_requires_grad(true);
  return t;
}

Tensor weighted_sum(const Tensor& y, uint64_t seed) {
  return ops::sum(ops::mul(y, Tensor::uniform(y.shape(), seed, -1.0, 1.0, y.dtype(), y.device())));
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_double_vector(), y = b.to_double_vector();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace

TEST_CASE("moda attention op: gradients pass gradcheck (f64)", "[cpu][moda][autograd]") {
  for (bool causal : {true, false}) {
    INFO("causal=" << causal);
    Tensor q = rand64({2, 4, 4, 5}, 1), k = rand64({2, 4, 2, 5}, 2), v = rand64({2, 4, 2, 5}, 3);
    Tensor kd = rand64({2, 4, 3, 2, 5}, 4), vd = rand64({2, 4, 3, 2, 5}, 5);
    auto f = [causal](const std::vector<Tensor>& x) {
      return weighted_sum(ops::moda_attention(x[0], x[1], x[2], x[3], x[4], causal), 9);
    };
    GradcheckResult r = gradcheck(f, {q, k, v, kd, vd});
    INFO(r.report);
    CHECK(r.ok);
  }
  // Without depth tensors: plain GQA attention.
  Tensor q = rand64({1, 5, 3, 4}, 6), k = rand64({1, 5, 1, 4}, 7), v = rand64({1, 5, 1, 4}, 8);
  GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& x) { return weighted_sum(ops::moda_attention(x[0], x[1], x[2], {}, {}), 3); },
      {q, k, v});
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("moda attention op: depth-stream views give what contiguous copies give", "[cpu][moda][autograd]") {
  // K, V of 4 slots in one stream buffer [B, T, S, Hk, d]: sequence = slot 3, depth = slots 0..2.
  const int64_t B = 2, T = 7, S = 4, Hk = 2, d = 8;
  Tensor kst = Tensor::uniform({B, T, S, Hk, d}, 1, -1, 1, DType::F32),
         vst = Tensor::uniform({B, T, S, Hk, d}, 2, -1, 1, DType::F32);
  Tensor q = Tensor::uniform({B, T, 6, d}, 3, -1, 1, DType::F32).set_requires_grad(true);
  Tensor k = kst.select(2, 3).set_requires_grad(true), v = vst.select(2, 3).set_requires_grad(true);
  Tensor kd = kst.narrow(2, 0, 3).set_requires_grad(true), vd = vst.narrow(2, 0, 3).set_requires_grad(true);
  REQUIRE_FALSE(kd.is_contiguous());
  Tensor kc = k.contiguous().detach().set_requires_grad(true), vc = v.contiguous().detach().set_requires_grad(true);
  Tensor kdc = kd.contiguous().detach().set_requires_grad(true), vdc = vd.contiguous().detach().set_requires_grad(true);
  Tensor q2 = q.detach().clone().set_requires_grad(true);

  Tensor o1 = ops::moda_attention(q, k, v, kd, vd), o2 = ops::moda_attention(q2, kc, vc, kdc, vdc);
  CHECK(max_abs_diff(o1, o2) == 0.0);
  weighted_sum(o1, 5).backward();
  weighted_sum(o2, 5).backward();
  CHECK(max_abs_diff(q.grad(), q2.grad()) == 0.0);
  CHECK(max_abs_diff(k.grad(), kc.grad()) == 0.0);
  CHECK(max_abs_diff(v.grad(), vc.grad()) == 0.0);
  CHECK(max_abs_diff(kd.grad(), kdc.grad()) == 0.0);
  CHECK(max_abs_diff(vd.grad(), vdc.grad()) == 0.0);
  CHECK(kd.grad().shape() == kd.shape());
}

TEST_CASE("moda attention op: L = 0 depth tensors equal no depth tensors", "[cpu][moda][autograd]") {
  Tensor q = Tensor::uniform({1, 6, 4, 8}, 1, -1, 1, DType::F64),
         k = Tensor::uniform({1, 6, 2, 8}, 2, -1, 1, DType::F64),
         v = Tensor::uniform({1, 6, 2, 8}, 3, -1, 1, DType::F64);
  Tensor empty = Tensor::zeros({1, 6, 0, 2, 8}, DType::F64);
  CHECK(max_abs_diff(ops::moda_attention(q, k, v, empty, empty), ops::moda_attention(q, k, v, {}, {})) == 0.0);
}

TEST_CASE("moda attention op: bad shapes and dtypes are rejected with a message", "[cpu][moda][autograd]") {
  Tensor q = Tensor::zeros({1, 4, 4, 8}), k = Tensor::zeros({1, 4, 2, 8}), v = Tensor::zeros({1, 4, 2, 8});
  Tensor kd = Tensor::zeros({1, 4, 2, 3, 8});  // Hk = 3 does not match k's 2 heads
  REQUIRE_THROWS_WITH(ops::moda_attention(q, k, v, kd, kd), Catch::Contains("depth_k, depth_v [B,T,L,Hk,d]"));
  REQUIRE_THROWS_WITH(ops::moda_attention(q, Tensor::zeros({1, 4, 3, 8}), Tensor::zeros({1, 4, 3, 8}), {}, {}),
                      Catch::Contains("multiple of Hk"));
  REQUIRE_THROWS_WITH(ops::moda_attention(q, k, v.to(DType::F64), {}, {}), Catch::Contains("dtype"));
}
