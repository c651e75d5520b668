// Differentiable MoDA attention on CUDA (bf16, fused kernels) against the same op on the CPU in
// f64, with K, V and the depth entries as views into depth-stream buffers like the model's.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/moda_attention_ops.h"
#include "autograd/pointwise_ops.h"
#include "tests/compare.h"

using namespace moda;
using moda::test::rel_l2;

namespace {}  // namespace

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

TEST_CASE("moda attention op cuda: the bf16 stream form matches the f64 CPU plain form and adds into its sinks",
          "[gpu][moda][autograd]") {
  // The model's route: own slot 5 as sequence K,V, slots [0, 4) as depth, gradient buffers of the
  // stream's layout pre-filled (as after later layers' backward); slot 4 is not read.
  const int64_t B = 2, T = 77, Hq = 8, Hk = 2, S = 6, own = 5, L = 4, d = 64;
  Tensor kst = Tensor::randn({B, T, S, Hk, d}, 1, DType::BF16), vst = Tensor::randn({B, T, S, Hk, d}, 2, DType::BF16);
  Tensor pre_k = Tensor::uniform({B, T, S, Hk, d}, 5, -0.1, 0.1, DType::BF16),
         pre_v = Tensor::uniform({B, T, S, Hk, d}, 6, -0.1, 0.1, DType::BF16);
  Tensor q = Tensor::randn({B, T, Hq, d}, 3, DType::BF16), w = Tensor::randn({B, T, Hq, d}, 4, DType::BF16);

  // Reference: the plain form on the CPU in f64, fresh gradients.
  Tensor ks = kst.to(DType::F64), vs = vst.to(DType::F64);
  Tensor rq = q.to(DType::F64).set_requires_grad(true), rk = ks.select(2, own).contiguous().set_requires_grad(true),
         rv = vs.select(2, own).contiguous().set_requires_grad(true),
         rkd = ks.narrow(2, 0, L).contiguous().set_requires_grad(true),
         rvd = vs.narrow(2, 0, L).contiguous().set_requires_grad(true);
  Tensor ro = ops::moda_attention(rq, rk, rv, rkd, rvd);
  ops::sum(ops::mul(ro, w.to(DType::F64))).backward();

  // The stream form on CUDA: views of the device buffers, gradients added into device sinks.
  Tensor K = kst.to(Device::cuda()), V = vst.to(Device::cuda());
  Tensor dK = pre_k.to(Device::cuda()), dV = pre_v.to(Device::cuda());
  Tensor gq = q.to(Device::cuda()).set_requires_grad(true);
  auto sinks = [&] {
    return ops::GradSinks{dK.select(2, own), dV.select(2, own), dK.narrow(2, 0, L), dV.narrow(2, 0, L)};
  };
  Tensor go = ops::moda_attention_into(gq, K.select(2, own), V.select(2, own), K.narrow(2, 0, L), V.narrow(2, 0, L),
                                       true, sinks);
  ops::sum(ops::mul(go, w.to(Device::cuda()))).backward();
  CHECK(rel_l2(go, ro) < 1e-2);
  CHECK(rel_l2(gq.grad(), rq.grad()) < 1e-2);

  // What the sinks hold against prefill + reference gradient, and what they gained (f64 difference
  // to the prefill) against the reference gradient: the second is the stricter test of the
  // gradient, the first catches an overwrite. The bf16 rounding of prefill + gradient costs up to
  // 2^-9 of |prefill + gradient| per element (the prefill is kept small for that reason).
  auto plus = [](const Tensor& a, const Tensor& b) {
    auto x = a.to_double_vector(), y = b.to_double_vector();
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
    return Tensor::from_vector(x, a.shape(), DType::F64);
  };
  auto gained = [](const Tensor& sink, const Tensor& prefill) {
    auto a = sink.to(Device::cpu()).to_double_vector(), b = prefill.to_double_vector();
    for (size_t i = 0; i < a.size(); ++i) a[i] -= b[i];
    return Tensor::from_vector(a, sink.shape(), DType::F64);
  };
  struct Sink {
    const char* name;
    Tensor got, prefill, ref;
  };
  for (const Sink& s : {Sink{"k", dK.select(2, own), pre_k.select(2, own), rk.grad()},
                        Sink{"v", dV.select(2, own), pre_v.select(2, own), rv.grad()},
                        Sink{"depth_k", dK.narrow(2, 0, L), pre_k.narrow(2, 0, L), rkd.grad()},
                        Sink{"depth_v", dV.narrow(2, 0, L), pre_v.narrow(2, 0, L), rvd.grad()}}) {
    INFO(s.name);
    CHECK(rel_l2(s.got.to(Device::cpu()), plus(s.prefill, s.ref)) < 2e-2);
    CHECK(rel_l2(gained(s.got, s.prefill), s.ref) < 3e-2);
  }
  // The slot not read keeps its prefill, bit for bit.
  CHECK(dK.select(2, 4).to(Device::cpu()).to_double_vector() == pre_k.select(2, 4).to_double_vector());
  CHECK(dV.select(2, 4).to(Device::cpu()).to_double_vector() == pre_v.select(2, 4).to_double_vector());
}
