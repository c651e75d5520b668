// MoDA attention CUDA kernels (bf16) against the float64 CPU reference on fresh random
// bf16-representable inputs, with outputs and gradients poisoned (NaN) first; relative L2 error
// below 1e-2 for o and for each of the five gradients, over the case list of
// tests/moda_attention_cases.h (causal and not, G, L, T, d, strided depth-stream views, accumulate).
#include <catch2/catch.hpp>

#include <cuda_runtime_api.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/bf16.h"
#include "kernels/cuda/moda_attention.h"
#include "tests/device_vec.h"
#include "tests/moda_attention_cases.h"

using namespace moda;
using moda::test::cuda_ok;
using moda::test::DeviceVec;
using moda::test::ModaHost;
using moda::test::rel_l2;

namespace {

double rms(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return v.empty() ? 1.0 : std::sqrt(s / double(v.size()));
}

// Gives every element of a view a bf16 random value of standard deviation sd (the old value the
// accumulate mode must add to); returns the view's new contents.
std::vector<double> seed_view(const ModaHost& h, std::vector<double>& buf, int64_t offset, ModaStrides st,
                              int64_t heads, int64_t slots, double sd, std::mt19937& rng) {
  std::normal_distribution<double> nd(0.0, sd);
  const auto& s = h.shape;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t)
      for (int64_t j = 0; j < slots; ++j)
        for (int64_t hh = 0; hh < heads; ++hh)
          for (int64_t c = 0; c < s.d; ++c)
            buf[offset + b * st.batch + t * st.token + j * st.slot + hh * st.head + c] =
                moda::test::round_bf16(nd(rng));
  return h.gather(buf, offset, st, heads, slots);
}

std::vector<double> plus(std::vector<double> a, const std::vector<double>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

}  // namespace

TEST_CASE("moda attention cuda: forward and backward match the float64 reference", "[gpu][moda]") {
  uint32_t seed = 1000;
  for (const auto& spec : moda::test::moda_case_list(false)) {
    const auto& c = spec.c;
    const bool acc = spec.accumulate;
    INFO("B=" << c.B << " T=" << c.T << " Hq=" << c.Hq << " Hk=" << c.Hk << " L=" << c.L << " d=" << c.d
              << " causal=" << c.causal << " accumulate=" << acc);
    ModaHost h(c);
    h.fill(seed++, true, false);
    const moda::test::ModaReference<double> ref(h, true, false);  // gradients written, not added

    // Expected gradient-buffer contents: in accumulate mode an old value of the gradients' own
    // scale (so that adding twice or not at all cannot pass) plus the gradient.
    std::vector<double> exp_dk_seq = h.seq_view(ref.dkst), exp_dv_seq = h.seq_view(ref.dvst);
    std::vector<double> exp_dk_dep = h.depth_view(ref.dkst), exp_dv_dep = h.depth_view(ref.dvst);
    if (acc) {
      std::mt19937 rng(seed * 7);
      const auto ss = h.seq_strides(), ds = h.depth_strides();
      exp_dk_seq = plus(exp_dk_seq, seed_view(h, h.dkst, h.seq_offset(), ss, c.Hk, 1, rms(exp_dk_seq), rng));
      exp_dv_seq = plus(exp_dv_seq, seed_view(h, h.dvst, h.seq_offset(), ss, c.Hk, 1, rms(exp_dv_seq), rng));
      if (c.L > 0) {
        exp_dk_dep = plus(exp_dk_dep, seed_view(h, h.dkst, h.depth_offset(), ds, c.Hk, c.L, rms(exp_dk_dep), rng));
        exp_dv_dep = plus(exp_dv_dep, seed_view(h, h.dvst, h.depth_offset(), ds, c.Hk, c.L, rms(exp_dv_dep), rng));
      }
    }

    DeviceVec<bf16> q(h.q), kst(h.kst), vst(h.vst), dout(h.dout), o(h.o), dq(h.dq), dkst(h.dkst), dvst(h.dvst);
    DeviceVec<float> lse(h.lse);
    const int64_t so = h.seq_offset(), dof = h.depth_offset();
    const auto qs = h.q_strides(), os = h.o_strides(), ss = h.seq_strides(), ds = h.depth_strides();
    cuda::moda_attention_forward(h.shape, q.ptr, qs, kst.ptr + so, ss, vst.ptr + so, ss, kst.ptr + dof, ds,
                                 vst.ptr + dof, ds, o.ptr, os, lse.ptr, nullptr);
    cuda_ok(cudaDeviceSynchronize(), "forward");
    CHECK(rel_l2(h.o_view(o.host()), h.o_view(ref.o)) < 1e-2);
    CHECK(rel_l2(lse.host(), ref.lse) < 1e-4);

    cuda::moda_attention_backward(h.shape, q.ptr, qs, kst.ptr + so, ss, vst.ptr + so, ss, kst.ptr + dof, ds,
                                  vst.ptr + dof, ds, o.ptr, os, lse.ptr, dout.ptr, os, dq.ptr, qs, dkst.ptr + so, ss,
                                  dvst.ptr + so, ss, dkst.ptr + dof, ds, dvst.ptr + dof, ds, acc, acc, nullptr,
                                  nullptr);
    cuda_ok(cudaDeviceSynchronize(), "backward");
    const auto got_dk = dkst.host(), got_dv = dvst.host();
    CHECK(rel_l2(h.q_view(dq.host()), h.q_view(ref.dq)) < 1e-2);
    CHECK(rel_l2(h.seq_view(got_dk), exp_dk_seq) < 1e-2);
    CHECK(rel_l2(h.seq_view(got_dv), exp_dv_seq) < 1e-2);
    if (c.L > 0) {
      CHECK(rel_l2(h.depth_view(got_dk), exp_dk_dep) < 1e-2);
      CHECK(rel_l2(h.depth_view(got_dv), exp_dv_dep) < 1e-2);
    }
    CHECK(h.slot0_untouched(got_dk));  // nothing written outside the views
    CHECK(h.slot0_untouched(got_dv));
  }
}

TEST_CASE("moda attention cuda: caller workspace gives the same gradients as the internal one", "[gpu][moda]") {
  ModaHost h(moda::test::ModaCase{1, 70, 4, 2, 3, 64, true});
  h.fill(77, true, false);
  DeviceVec<bf16> q(h.q), kst(h.kst), vst(h.vst), dout(h.dout), o(h.o), dq(h.dq), dkst(h.dkst), dvst(h.dvst);
  DeviceVec<float> lse(h.lse);
  const int64_t so = h.seq_offset(), dof = h.depth_offset();
  const auto qs = h.q_strides(), os = h.o_strides(), ss = h.seq_strides(), ds = h.depth_strides();
  cuda::moda_attention_forward(h.shape, q.ptr, qs, kst.ptr + so, ss, vst.ptr + so, ss, kst.ptr + dof, ds, vst.ptr + dof,
                               ds, o.ptr, os, lse.ptr, nullptr);
  auto run = [&](void* ws) {
    cuda::moda_attention_backward(h.shape, q.ptr, qs, kst.ptr + so, ss, vst.ptr + so, ss, kst.ptr + dof, ds,
                                  vst.ptr + dof, ds, o.ptr, os, lse.ptr, dout.ptr, os, dq.ptr, qs, dkst.ptr + so, ss,
                                  dvst.ptr + so, ss, dkst.ptr + dof, ds, dvst.ptr + dof, ds, false, false, ws, nullptr);
    cuda_ok(cudaDeviceSynchronize(), "backward");
    return std::vector<std::vector<double>>{dq.host(), dkst.host(), dvst.host()};
  };
  const auto internal = run(nullptr);
  void* ws = nullptr;
  cuda_ok(cudaMalloc(&ws, cuda::moda_attention_backward_workspace_bytes(h.shape)), "cudaMalloc workspace");
  const auto external = run(ws);
  cudaFree(ws);
  // Same math, only the order of the dq atomics may differ.
  CHECK(rel_l2(h.q_view(external[0]), h.q_view(internal[0])) < 1e-2);
  CHECK(rel_l2(h.depth_view(external[1]), h.depth_view(internal[1])) == 0.0);
  CHECK(rel_l2(h.seq_view(external[2]), h.seq_view(internal[2])) == 0.0);
}

TEST_CASE("moda attention cuda: unsupported shapes and layouts are rejected with a message", "[gpu][moda]") {
  ModaAttentionShape s;
  s.B = 1, s.T = 8, s.Hq = 2, s.Hk = 1, s.L = 0, s.d = 96;
  bf16* p = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&p), 1 << 16);
  const ModaStrides st = moda_strides_bthd(8, 2, 96);
  float* lse = reinterpret_cast<float*>(p);
  REQUIRE_THROWS_WITH(
      cuda::moda_attention_forward(s, p, st, p, st, p, st, nullptr, {}, nullptr, {}, p, st, lse, nullptr),
      Catch::Contains("64 or 128"));
  s.d = 64;
  ModaStrides odd = moda_strides_bthd(8, 2, 64);
  odd.head = 65;
  REQUIRE_THROWS_WITH(
      cuda::moda_attention_forward(s, p, odd, p, odd, p, odd, nullptr, {}, nullptr, {}, p, odd, lse, nullptr),
      Catch::Contains("multiples of 8"));
  s.Hq = 66;
  s.Hk = 1;
  REQUIRE_THROWS_WITH(
      cuda::moda_attention_forward(s, p, st, p, st, p, st, nullptr, {}, nullptr, {}, p, st, lse, nullptr),
      Catch::Contains("<= 32"));
  cudaFree(p);
}
