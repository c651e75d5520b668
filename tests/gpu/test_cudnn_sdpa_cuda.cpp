// Our cuDNN fused-attention wrapper (kernels/cuda/cudnn_sdpa.h) against the float64 CPU reference
// of MoDA attention at L = 0 (kernels/cpu/moda_attention.h), on fresh random bf16-representable
// inputs with outputs and gradients NaN-poisoned first: relative L2 error below 1e-2 for o, dq, dk,
// dv and below 1e-4 for the stats (log-sum-exp), as the MoDA kernel tests. Layout as the model's:
// K and V are slots 0 and 1 of one stream buffer [B, T, 2, Hk, d] (token stride 2*Hk*d), their
// gradients slots of a matching buffer; q and dq have a padded head stride (d + 8).
// Skipped in a build without cuDNN; fails where cuDNN was built in but cannot run.
#include <catch2/catch.hpp>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "kernels/cpu/moda_attention.h"
#include "kernels/cuda/cudnn_sdpa.h"
#include "tests/compare.h"
#include "tests/device_vec.h"
#include "tests/skip_without_cudnn.h"

using namespace moda;
using moda::test::cuda_ok;
using moda::test::DeviceVec;
using moda::test::rel_l2;
using moda::test::skip_without_cudnn;

namespace {

double round_bf16(double x) { return double(bf16_to_float(float_to_bf16(float(x)))); }

struct SdpaCase {
  int64_t B, T, Hq, Hk, d;
  bool causal;
};

// The elements of a [B, T, H, d] view (offset + strides) of `buf`, in [B, T, H, d] order.
std::vector<double> gather(const std::vector<double>& buf, int64_t offset, ModaStrides st, const SdpaCase& c,
                           int64_t H) {
  std::vector<double> out;
  out.reserve(size_t(c.B * c.T * H * c.d));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t x = 0; x < c.d; ++x)
          out.push_back(buf[size_t(offset + b * st.batch + t * st.token + h * st.head + x)]);
  return out;
}

void check_case(const SdpaCase& c, uint32_t seed) {
  INFO("B=" << c.B << " T=" << c.T << " Hq=" << c.Hq << " Hk=" << c.Hk << " d=" << c.d << " causal=" << c.causal);
  const int64_t S = 2;  // stream slots: k (or dk) in slot 0, v (or dv) in slot 1
  const ModaStrides qs{c.T * c.Hq * (c.d + 8), c.Hq * (c.d + 8), 0, c.d + 8};
  const ModaStrides os = moda_strides_bthd(c.T, c.Hq, c.d);
  const ModaStrides ks = moda_strides_stream_slot(c.T, S, c.Hk, c.d);
  const int64_t k_off = 0, v_off = c.Hk * c.d;
  const size_t qn = size_t(c.B * qs.batch), on = size_t(c.B * os.batch), sn = size_t(c.B * ks.batch);

  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> q(qn, 0.0), kv(sn), dout(on);
  for (auto& x : q) x = round_bf16(nd(rng));
  for (auto& x : kv) x = round_bf16(nd(rng));
  for (auto& x : dout) x = round_bf16(nd(rng));

  // float64 reference at L = 0.
  ModaAttentionShape shape;
  shape.B = c.B, shape.T = c.T, shape.Hq = c.Hq, shape.Hk = c.Hk, shape.L = 0, shape.d = c.d, shape.causal = c.causal;
  std::vector<double> ref_o(on), ref_lse(size_t(c.B * c.Hq * c.T)), ref_dq(qn, 0.0), ref_dkv(sn, 0.0);
  cpu::moda_attention_forward<double>(shape, q.data(), qs, kv.data() + k_off, ks, kv.data() + v_off, ks, nullptr, {},
                                      nullptr, {}, ref_o.data(), os, ref_lse.data());
  cpu::moda_attention_backward<double>(shape, q.data(), qs, kv.data() + k_off, ks, kv.data() + v_off, ks, nullptr, {},
                                       nullptr, {}, ref_o.data(), os, ref_lse.data(), dout.data(), os, ref_dq.data(),
                                       qs, ref_dkv.data() + k_off, ks, ref_dkv.data() + v_off, ks, nullptr, {}, nullptr,
                                       {}, false, false);

  DeviceVec<bf16> q_d(q), kv_d(kv), dout_d(dout), o(ref_o, true), dq(ref_dq, true), dkv(ref_dkv, true);
  DeviceVec<float> stats(ref_lse, true);
  cuda::CudnnSdpaParams p;
  p.B = c.B, p.Tq = c.T, p.Tk = c.T, p.Hq = c.Hq, p.Hk = c.Hk, p.d = c.d, p.causal = c.causal;
  p.q = q_d.ptr, p.q_strides = qs;
  p.k = kv_d.ptr + k_off, p.k_strides = ks;
  p.v = kv_d.ptr + v_off, p.v_strides = ks;
  p.o = o.ptr, p.o_strides = os;
  p.stats = stats.ptr;
  cuda::cudnn_sdpa_forward(p, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "cudnn_sdpa_forward");
  CHECK(rel_l2(o.host(), ref_o) < 1e-2);
  CHECK(rel_l2(stats.host(), ref_lse) < 1e-4);

  p.dout = dout_d.ptr, p.dout_strides = os;
  p.dq = dq.ptr, p.dq_strides = qs;
  p.dk = dkv.ptr + k_off, p.dk_strides = ks;
  p.dv = dkv.ptr + v_off, p.dv_strides = ks;
  cuda::cudnn_sdpa_backward(p, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "cudnn_sdpa_backward");
  CHECK(rel_l2(gather(dq.host(), 0, qs, c, c.Hq), gather(ref_dq, 0, qs, c, c.Hq)) < 1e-2);
  const auto got_dkv = dkv.host();
  CHECK(rel_l2(gather(got_dkv, k_off, ks, c, c.Hk), gather(ref_dkv, k_off, ks, c, c.Hk)) < 1e-2);
  CHECK(rel_l2(gather(got_dkv, v_off, ks, c, c.Hk), gather(ref_dkv, v_off, ks, c, c.Hk)) < 1e-2);
}

}  // namespace

TEST_CASE("cudnn sdpa: forward, stats and gradients match the float64 reference", "[gpu][cudnn]") {
  if (skip_without_cudnn()) return;
  uint32_t seed = 4000;
  for (int64_t T : {128, 257})
    for (auto [Hq, Hk] : {std::pair<int64_t, int64_t>{4, 2}, {4, 4}})
      for (int64_t d : {64, 128}) check_case(SdpaCase{2, T, Hq, Hk, d, true}, seed++);
}

TEST_CASE("cudnn sdpa: non-causal and single-head GQA groups", "[gpu][cudnn]") {
  if (skip_without_cudnn()) return;
  check_case(SdpaCase{2, 128, 4, 2, 64, false}, 4100);
  check_case(SdpaCase{1, 200, 8, 1, 128, true}, 4101);
}

TEST_CASE("cudnn sdpa: unsupported shapes are rejected with a message", "[gpu][cudnn]") {
  if (skip_without_cudnn()) return;
  cuda::CudnnSdpaParams p;
  p.B = 1, p.Tq = 8, p.Tk = 8, p.Hq = 2, p.Hk = 1, p.d = 96;
  bf16* buf = nullptr;
  cuda_ok(cudaMalloc(reinterpret_cast<void**>(&buf), 1 << 16), "cudaMalloc");
  p.q = p.k = p.v = buf, p.o = buf, p.stats = reinterpret_cast<float*>(buf);
  REQUIRE_THROWS_WITH(cuda::cudnn_sdpa_forward(p, nullptr), Catch::Contains("64 or 128"));
  p.d = 64;
  p.Tk = 16;
  p.dout = buf, p.dq = p.dk = p.dv = buf;
  REQUIRE_THROWS_WITH(cuda::cudnn_sdpa_backward(p, nullptr), Catch::Contains("Tq == Tk"));
  cudaFree(buf);
}
