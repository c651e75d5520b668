// Differentiable MoDA attention (autograd/moda_attention_ops.h) on the CPU: gradcheck in f64,
// strided depth-stream views against contiguous copies, the L = 0 / undefined-depth forms, errors;
// the stream form (moda_attention_into) against the plain form, its sinks and ordering inputs.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/function.h"
#include "autograd/gradcheck.h"
#include "autograd/moda_attention_ops.h"
#include "autograd/pointwise_ops.h"
#include "core/error.h"
#include "tests/compare.h"

using namespace moda;
using moda::test::max_abs_diff;

namespace {

Tensor rand64(const Shape& shape, uint64_t seed, bool grad = true) {
  Tensor t = Tensor::uniform(shape, seed, -1.5, 1.5, DType::F64);
  if (grad) t.set_requires_grad(true);
  return t;
}

Tensor weighted_sum(const Tensor& y, uint64_t seed) {
  return ops::sum(ops::mul(y, Tensor::uniform(y.shape(), seed, -1.0, 1.0, y.dtype(), y.device())));
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

namespace {

// A depth-stream-like setting: K, V buffers [B, T, S, Hk, d] outside the graph, gradient buffers
// of the same layout pre-filled with known values, own slot 4, depth slots [0, 2): slots 2, 3 and
// 5 are not read and must keep their values.
struct StreamCase {
  static constexpr int64_t B = 2, T = 6, S = 6, Hq = 4, Hk = 2, d = 5, own = 4, L = 2;
  Tensor K = Tensor::uniform({B, T, S, Hk, d}, 11, -1.5, 1.5, DType::F64);
  Tensor V = Tensor::uniform({B, T, S, Hk, d}, 12, -1.5, 1.5, DType::F64);
  Tensor prefill_k = Tensor::uniform({B, T, S, Hk, d}, 13, -1.0, 1.0, DType::F64);
  Tensor prefill_v = Tensor::uniform({B, T, S, Hk, d}, 14, -1.0, 1.0, DType::F64);
  Tensor dK = prefill_k.clone(), dV = prefill_v.clone();

  ops::GradSinks sinks() const {
    return {dK.select(2, own), dV.select(2, own), dK.narrow(2, 0, L), dV.narrow(2, 0, L)};
  }
};

}  // namespace

TEST_CASE("moda attention op: the stream form equals the plain form and adds into its sinks", "[cpu][moda][autograd]") {
  using C = StreamCase;
  for (bool causal : {true, false}) {
    INFO("causal=" << causal);
    C c;
    Tensor q1 = rand64({C::B, C::T, C::Hq, C::d}, 1), q2 = q1.detach().clone().set_requires_grad(true);
    bool sinks_asked = false;
    auto sinks = [&] {
      sinks_asked = true;
      return c.sinks();
    };
    Tensor o1 = ops::moda_attention_into(q1, c.K.select(2, C::own), c.V.select(2, C::own), c.K.narrow(2, 0, C::L),
                                         c.V.narrow(2, 0, C::L), causal, sinks);
    CHECK_FALSE(sinks_asked);  // gradient buffers are taken at the backward, not the forward
    // The plain form on contiguous copies with fresh gradients.
    Tensor k = c.K.select(2, C::own).contiguous().set_requires_grad(true),
           v = c.V.select(2, C::own).contiguous().set_requires_grad(true),
           kd = c.K.narrow(2, 0, C::L).contiguous().set_requires_grad(true),
           vd = c.V.narrow(2, 0, C::L).contiguous().set_requires_grad(true);
    Tensor o2 = ops::moda_attention(q2, k, v, kd, vd, causal);
    CHECK(max_abs_diff(o1, o2) == 0.0);
    weighted_sum(o1, 5).backward();
    weighted_sum(o2, 5).backward();
    CHECK(sinks_asked);
    CHECK(max_abs_diff(q1.grad(), q2.grad()) == 0.0);

    // Expected buffers: the prefill plus the plain form's gradients at the slots read.
    Tensor want_k = c.prefill_k.clone(), want_v = c.prefill_v.clone();
    auto add_at = [](Tensor dst, const Tensor& g) {
      auto a = dst.to_double_vector(), b = g.to_double_vector();
      for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
      dst.copy_(Tensor::from_vector(a, dst.shape(), DType::F64));
    };
    add_at(want_k.select(2, C::own), k.grad());
    add_at(want_v.select(2, C::own), v.grad());
    add_at(want_k.narrow(2, 0, C::L), kd.grad());
    add_at(want_v.narrow(2, 0, C::L), vd.grad());
    CHECK(max_abs_diff(c.dK, want_k) < 1e-14);
    CHECK(max_abs_diff(c.dV, want_v) < 1e-14);
    // Slots not read are untouched, bit for bit.
    for (int64_t s : {2, 3, 5}) {
      CHECK(max_abs_diff(c.dK.select(2, s), c.prefill_k.select(2, s)) == 0.0);
      CHECK(max_abs_diff(c.dV.select(2, s), c.prefill_v.select(2, s)) == 0.0);
    }
  }
}

TEST_CASE("moda attention op: the stream form without depth slots adds into the sequence sinks only",
          "[cpu][moda][autograd]") {
  using C = StreamCase;
  C c;
  Tensor q1 = rand64({C::B, C::T, C::Hq, C::d}, 2), q2 = q1.detach().clone().set_requires_grad(true);
  auto sinks = [&c] { return ops::GradSinks{c.dK.select(2, C::own), c.dV.select(2, C::own), {}, {}}; };
  Tensor o1 = ops::moda_attention_into(q1, c.K.select(2, C::own), c.V.select(2, C::own), {}, {}, true, sinks);
  Tensor k = c.K.select(2, C::own).contiguous().set_requires_grad(true),
         v = c.V.select(2, C::own).contiguous().set_requires_grad(true);
  Tensor o2 = ops::moda_attention(q2, k, v, {}, {});
  CHECK(max_abs_diff(o1, o2) == 0.0);
  weighted_sum(o1, 7).backward();
  weighted_sum(o2, 7).backward();
  CHECK(max_abs_diff(q1.grad(), q2.grad()) == 0.0);
  auto got_k = c.dK.select(2, C::own).to_double_vector(), pre_k = c.prefill_k.select(2, C::own).to_double_vector(),
       gk = k.grad().to_double_vector();
  double worst = 0;
  for (size_t i = 0; i < got_k.size(); ++i) worst = std::max(worst, std::abs(got_k[i] - (pre_k[i] + gk[i])));
  CHECK(worst < 1e-14);
  for (int64_t s : {0, 1, 2, 3, 5}) CHECK(max_abs_diff(c.dK.select(2, s), c.prefill_k.select(2, s)) == 0.0);
}

TEST_CASE("moda attention op: ordering inputs get no gradient and run their producer after the op",
          "[cpu][moda][autograd]") {
  using C = StreamCase;
  C c;
  Tensor q = rand64({C::B, C::T, C::Hq, C::d}, 3);
  Tensor seed = rand64({1}, 4);
  bool attention_backward_done = false, producer_saw_it = false;
  // A zero-size marker whose producer must run after the attention's backward (as a slot writer).
  Tensor marker = record_op(
      "marker_producer", {seed}, {Tensor::empty({0}, DType::F64)},
      [&](const std::vector<Tensor>&) {
        producer_saw_it = attention_backward_done;
        return std::vector<Tensor>{Tensor()};
      },
      /*run_without_grad=*/true)[0];
  auto sinks = [&] {
    attention_backward_done = true;  // asked for inside the backward, right before the kernels write
    return c.sinks();
  };
  Tensor o = ops::moda_attention_into(q, c.K.select(2, C::own), c.V.select(2, C::own), c.K.narrow(2, 0, C::L),
                                      c.V.narrow(2, 0, C::L), true, sinks, {marker});
  weighted_sum(o, 8).backward();
  CHECK(attention_backward_done);
  CHECK(producer_saw_it);
  CHECK_FALSE(seed.grad().defined());
}

TEST_CASE("moda attention op: stream form misuse is reported", "[cpu][moda][autograd]") {
  using C = StreamCase;
  C c;
  Tensor q = rand64({C::B, C::T, C::Hq, C::d}, 5);
  Tensor k = c.K.select(2, C::own), v = c.V.select(2, C::own);
  auto good = [&c] { return c.sinks(); };
  REQUIRE_THROWS_WITH(ops::moda_attention_into(q, k.detach().set_requires_grad(true), v, {}, {}, true, good),
                      Catch::Contains("must not require grad"));
  REQUIRE_THROWS_WITH(ops::moda_attention_into(q, k, v, {}, {}, true, nullptr), Catch::Contains("no gradient sinks"));
  // A sink of the wrong shape is found when the backward asks for it.
  auto wrong = [&c] { return ops::GradSinks{c.dK.narrow(2, 0, 1), c.dV.select(2, C::own), {}, {}}; };
  Tensor o = ops::moda_attention_into(q, k, v, {}, {}, true, wrong);
  REQUIRE_THROWS_WITH(weighted_sum(o, 9).backward(), Catch::Contains("gradient sink for k"));
}
