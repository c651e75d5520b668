// Differentiable MoDA attention on CUDA (bf16, fused kernels) against the same op on the CPU in
// f64, with K, V and the depth entries as views into depth-stream buffers like the model's.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/moda_attention_ops.h"
#include "autograd/pointwise_ops.h"

using namespace moda;

namespace {

double rel_l2(const Tensor& got, const Tensor& ref) {
  const auto x = got.to_double_vector(), y = ref.to_double_vector();
  REQUIRE(x.size() == y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) return INFINITY;
    num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace

TEST_CASE("moda attention op cuda: bf16 op matches the f64 CPU op, views included", "[gpu][moda][autograd]") {
  const int64_t B = 2, T = 77, Hq = 8, Hk = 2, S = 6, L = 5, d = 64;
  // bf16-representable values, generated once and used by both devices.
  Tensor kst = Tensor::randn({B, T, S, Hk, d}, 1, DType::BF16), vst = Tensor::randn({B, T, S, Hk, d}, 2, DType::BF16);
  Tensor q = Tensor::randn({B, T, Hq, d}, 3, DType::BF16), w = Tensor::randn({B, T, Hq, d}, 4, DType::BF16);
  struct Run {
    Tensor q, k, v, kd, vd, o;
  };
  auto run = [&](Device dev, DType dt) {
    Tensor ks = kst.to(dt).to(dev), vs = vst.to(dt).to(dev);
    Run r{q.to(dt).to(dev).set_requires_grad(true),   ks.select(2, L).set_requires_grad(true),
          vs.select(2, L).set_requires_grad(true),    ks.narrow(2, 0, L).set_requires_grad(true),
          vs.narrow(2, 0, L).set_requires_grad(true), Tensor()};
    r.o = ops::moda_attention(r.q, r.k, r.v, r.kd, r.vd);
    ops::sum(ops::mul(r.o, w.to(dt).to(dev))).backward();
    return r;
  };
  Run ref = run(Device::cpu(), DType::F64), got = run(Device::cuda(), DType::BF16);
  CHECK(rel_l2(got.o, ref.o) < 1e-2);
  CHECK(rel_l2(got.q.grad(), ref.q.grad()) < 1e-2);
  CHECK(rel_l2(got.k.grad(), ref.k.grad()) < 1e-2);
  CHECK(rel_l2(got.v.grad(), ref.v.grad()) < 1e-2);
  CHECK(rel_l2(got.kd.grad(), ref.kd.grad()) < 1e-2);
  CHECK(rel_l2(got.vd.grad(), ref.vd.grad()) < 1e-2);
}

TEST_CASE("moda attention op cuda: f32 CUDA inputs are rejected with a message", "[gpu][moda][autograd]") {
  Tensor q = Tensor::zeros({1, 4, 2, 64}, DType::F32, Device::cuda()),
         k = Tensor::zeros({1, 4, 1, 64}, DType::F32, Device::cuda());
  REQUIRE_THROWS_WITH(ops::moda_attention(q, k, k, {}, {}), Catch::Contains("bf16"));
}
