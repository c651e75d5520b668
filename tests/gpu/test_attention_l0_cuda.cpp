// Attention on CUDA under each train.attention_l0 mode
// (autograd/attention_l0.h): ours, cuDNN's fused SDPA, and auto (timed and checked per shape). In
// every mode both forms of the op — fresh gradients, and the model's stream form that ADDS k, v
// gradients into pre-filled sinks (cuDNN itself only overwrites) — must match the float64 CPU op.
// The cuDNN modes are skipped in a build without cuDNN and fail where it was built in but cannot run.
#include <catch2/catch.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "autograd/attention_l0.h"
#include "autograd/moda_attention_ops.h"
#include "autograd/pointwise_ops.h"
#include "kernels/cuda/cudnn_sdpa.h"
#include "tests/compare.h"
#include "tests/skip_without_cudnn.h"

using namespace moda;
using moda::test::rel_l2;

namespace {

// Restores the process-wide mode (other tests rely on the default) however the test ends.
struct ModeGuard {
  ops::AttentionL0 saved = ops::attention_l0();
  ~ModeGuard() { ops::set_attention_l0(saved, Device::cpu()); }
};

void check_mode(ops::AttentionL0 mode, int64_t d, int64_t L = 0, int64_t Hq = 8) {
  INFO("attention_l0 " << ops::attention_l0_name(mode) << ", d " << d << ", L " << L << ", Hq " << Hq << " (Hk 2)");
  ModeGuard guard;
  ops::set_attention_l0(mode, Device::cuda());
  // A depth stream of S slots: depth keys in slots [0, L), this layer's k, v in slot `own`, one slot
  // after it that nobody touches (its gradient sink must keep its prefill).
  const int64_t B = 2, T = 77, Hk = 2, S = L + 2, own = L;
  Tensor kst = Tensor::randn({B, T, S, Hk, d}, 11, DType::BF16), vst = Tensor::randn({B, T, S, Hk, d}, 12, DType::BF16);
  Tensor pre_k = Tensor::uniform({B, T, S, Hk, d}, 15, -0.1, 0.1, DType::BF16),
         pre_v = Tensor::uniform({B, T, S, Hk, d}, 16, -0.1, 0.1, DType::BF16);
  Tensor q = Tensor::randn({B, T, Hq, d}, 13, DType::BF16), w = Tensor::randn({B, T, Hq, d}, 14, DType::BF16);
  auto depth = [&](const Tensor& st) { return L > 0 ? st.narrow(2, 0, L) : Tensor(); };
  auto f64_leaf = [](const Tensor& t) {
    return t.defined() ? t.to(DType::F64).contiguous().set_requires_grad(true) : Tensor();
  };

  // Reference: the plain form on the CPU in f64.
  Tensor rq = f64_leaf(q), rk = f64_leaf(kst.select(2, own)), rv = f64_leaf(vst.select(2, own));
  Tensor rkd = f64_leaf(depth(kst)), rvd = f64_leaf(depth(vst));
  Tensor ro = ops::moda_attention(rq, rk, rv, rkd, rvd);
  ops::sum(ops::mul(ro, w.to(DType::F64))).backward();

  // Plain form on CUDA: fresh gradients of every input.
  Tensor K = kst.to(Device::cuda()), V = vst.to(Device::cuda()), W = w.to(Device::cuda());
  Tensor pq = q.to(Device::cuda()).set_requires_grad(true), pk = K.select(2, own).set_requires_grad(true),
         pv = V.select(2, own).set_requires_grad(true);
  Tensor pkd = L > 0 ? depth(K).set_requires_grad(true) : Tensor(),
         pvd = L > 0 ? depth(V).set_requires_grad(true) : Tensor();
  Tensor po = ops::moda_attention(pq, pk, pv, pkd, pvd);
  ops::sum(ops::mul(po, W)).backward();
  CHECK(rel_l2(po, ro) < 1e-2);
  CHECK(rel_l2(pq.grad(), rq.grad()) < 1e-2);
  CHECK(rel_l2(pk.grad(), rk.grad()) < 1e-2);
  CHECK(rel_l2(pv.grad(), rv.grad()) < 1e-2);
  if (L > 0) {
    CHECK(rel_l2(pkd.grad(), rkd.grad()) < 1e-2);
    CHECK(rel_l2(pvd.grad(), rvd.grad()) < 1e-2);
  }

  // Stream form: k, v and the depth keys are views of the stream, their gradients ADDED into
  // pre-filled sinks.
  Tensor dK = pre_k.to(Device::cuda()), dV = pre_v.to(Device::cuda());
  Tensor sq = q.to(Device::cuda()).set_requires_grad(true);
  Tensor so = ops::moda_attention_into(sq, K.select(2, own), V.select(2, own), depth(K), depth(V), true, [&] {
    return ops::GradSinks{dK.select(2, own), dV.select(2, own), depth(dK), depth(dV)};
  });
  ops::sum(ops::mul(so, W)).backward();
  CHECK(rel_l2(so, ro) < 1e-2);
  CHECK(rel_l2(sq.grad(), rq.grad()) < 1e-2);
  // What the backward added to each written slot, against the reference gradient of that slot.
  auto added = [](const Tensor& sink, const Tensor& prefill) {
    auto got = sink.to(Device::cpu()).to_double_vector(), pre = prefill.to_double_vector();
    for (size_t i = 0; i < got.size(); ++i) got[i] -= pre[i];
    return got;
  };
  for (auto [sink, prefill, ref] : {std::tuple{dK, pre_k, rk.grad()}, {dV, pre_v, rv.grad()}}) {
    CHECK(rel_l2(Tensor::from_vector(added(sink.select(2, own), prefill.select(2, own)), ref.shape(), DType::F64),
                 ref) < 3e-2);
    // The slot after it keeps its prefill bit for bit.
    CHECK(sink.select(2, S - 1).to(Device::cpu()).to_double_vector() == prefill.select(2, S - 1).to_double_vector());
  }
  if (L > 0) {
    for (auto [sink, prefill, ref] : {std::tuple{dK, pre_k, rkd.grad()}, {dV, pre_v, rvd.grad()}})
      CHECK(rel_l2(Tensor::from_vector(added(depth(sink), depth(prefill)), ref.shape(), DType::F64), ref) < 3e-2);
  }
}

}  // namespace

TEST_CASE("attention l0 cuda: our kernels, both forms, match the f64 CPU op", "[gpu][moda][autograd]") {
  for (int64_t d : {64, 128}) check_mode(ops::AttentionL0::Moda, d);
}

TEST_CASE("attention l0 cuda: cuDNN and auto, both forms, match the f64 CPU op", "[gpu][moda][autograd][cudnn]") {
  if (moda::test::skip_without_cudnn()) return;
  for (int64_t d : {64, 128}) {
    check_mode(ops::AttentionL0::Cudnn, d);
    check_mode(ops::AttentionL0::Auto, d);
  }
}

// With depth keys cuDNN computes the sequence keys' part and our depth kernels merge the rest in
// (autograd/attention_l0.h). L 1 (one depth key), 5, 20, 70 (more slots than one depth chunk of
// the mma.sync kernels holds; an odd number of the CUDA-core kernels' slot groups); G = Hq / Hk
// 1..4 takes the CUDA-core depth kernels (kernels/cuda/moda_attention_depth_simt.cuh), G 8 the
// mma.sync ones.
TEST_CASE("attention l0 cuda: split cuDNN + depth, both forms, match the f64 CPU op", "[gpu][moda][autograd][cudnn]") {
  if (moda::test::skip_without_cudnn()) return;
  for (int64_t d : {64, 128})
    for (int64_t L : {1, 5, 20, 70}) {
      check_mode(ops::AttentionL0::Cudnn, d, L);
      if (L == 5) check_mode(ops::AttentionL0::Auto, d, L);
    }
  for (int64_t Hq : {2, 4, 6, 16})
    for (int64_t L : {5, 70}) check_mode(ops::AttentionL0::Cudnn, L == 5 ? 64 : 128, L, Hq);
  for (int64_t L : {3}) check_mode(ops::AttentionL0::Moda, 64, L);  // the same checks hold for ours
}

TEST_CASE("attention l0 cuda: cudnn mode where cuDNN cannot run is refused at start", "[gpu][moda][autograd]") {
  std::string why;
  if (cuda::cudnn_sdpa_available(&why)) {
    ModeGuard guard;
    CHECK_NOTHROW(ops::set_attention_l0(ops::AttentionL0::Cudnn, Device::cuda()));
  } else {
    REQUIRE_THROWS_WITH(ops::set_attention_l0(ops::AttentionL0::Cudnn, Device::cuda()),
                        Catch::Contains("cudnn") && Catch::Contains(why));
  }
}
