// The CUDA-core depth kernels (kernels/cuda/moda_attention_depth_simt.cuh) compiled for the CPU
// and run lane by lane: each of a warp's 32 lanes is a thread, and a warp shuffle is a rendezvous
// of the 32 through a barrier. This checks the kernels' own code — indexing, strides, row groups,
// the online softmax and its merge, the accumulate mode, slots outside [0, L) left alone —
// against a float64 reference on every machine, CI included; the GPU test of the split path
// (tests/gpu/test_attention_l0_cuda.cpp) checks the same kernels on the device.
#include <barrier>
#include <cmath>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "core/bf16.h"

// --- the CUDA names the kernels use, on the CPU --------------------------------------------------
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static  // one warp runs at a time, its 32 lanes share it
struct uint4 {
  uint32_t x, y, z, w;
};
inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
inline uint4 __ldcg(const uint4* p) { return *p; }
inline float __ldcg(const float* p) { return *p; }
inline void __stcg(uint4* p, uint4 v) { *p = v; }
struct float2 {
  float x, y;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1) : x(x_) {}
};
struct EmulatedIndex {
  unsigned x = 0;
};
inline thread_local EmulatedIndex threadIdx, blockIdx;
using __nv_bfloat16 = moda::bf16;

namespace emulation {
inline std::barrier<>* lanes = nullptr;  // the 32 lanes of the warp being run
inline float exchange[32];
}  // namespace emulation

inline float __shfl_xor_sync(unsigned, float x, int offset) {
  const unsigned lane = threadIdx.x % 32;
  emulation::exchange[lane] = x;
  emulation::lanes->arrive_and_wait();
  const float y = emulation::exchange[lane ^ unsigned(offset)];
  emulation::lanes->arrive_and_wait();
  return y;
}

inline void __syncwarp() { emulation::lanes->arrive_and_wait(); }
// cp.async: the copy happens at once (each lane reads back only what it copied itself).
inline void copy16_async(uint4* dst, const moda::bf16* src, bool valid) {
  *dst = valid ? *reinterpret_cast<const uint4*>(src) : uint4{0, 0, 0, 0};
}
inline void cp_async_commit() {}
template <int N>
void cp_async_wait() {}

namespace moda::cuda::moda_attn {
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
inline uint32_t pack_bf16(float lo, float hi) {
  return uint32_t(float_to_bf16(lo).bits) | (uint32_t(float_to_bf16(hi).bits) << 16);
}
inline float2 unpack_bf16(uint32_t v) {
  return {bf16_to_float(bf16{uint16_t(v & 0xffffu)}), bf16_to_float(bf16{uint16_t(v >> 16)})};
}
}  // namespace moda::cuda::moda_attn

#define MODA_SIMT_EMULATION
#include "kernels/cuda/moda_attention_depth_simt.cuh"  // its `#pragma unroll`: -Wno-unknown-pragmas here
// ---------------------------------------------------------------------------------------------------

#include <catch2/catch.hpp>

using namespace moda;
using namespace moda::cuda::moda_attn::simt;

namespace {

using Bf = std::vector<bf16>;

// Runs `kernel` over the grid of depth_grid(p): the 32 lanes as threads, warp after warp (a warp's
// lanes meet at every shuffle, so the shared exchange is never used by two warps at once).
template <class Kernel>
void run_grid(const DepthParams& p, Kernel kernel) {
  const unsigned blocks = depth_grid(p).x;
  std::barrier<> bar(32);
  emulation::lanes = &bar;
  std::vector<std::thread> lanes;
  for (unsigned lane = 0; lane < 32; ++lane)
    lanes.emplace_back([&, lane] {
      for (unsigned blk = 0; blk < blocks; ++blk)
        for (int w = 0; w < kWarpsPerBlock; ++w) {
          threadIdx.x = unsigned(w) * 32 + lane, blockIdx.x = blk;
          kernel(p);
        }
    });
  for (auto& t : lanes) t.join();
}

Bf random_bf16(size_t n, float sd, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, sd);
  Bf v(n);
  for (auto& x : v) x = float_to_bf16(dist(rng));
  return v;
}

double f(bf16 x) { return bf16_to_float(x); }

// lse_mean: the sequence part's log-sum-exp; far below the depth scores (-12) and with q, k of
// standard deviation qk_sd = 2.5 (scores spread over ~+-20), the forward's running max moves off
// its start and then again past accumulated slots (its rescale branch).
template <int D, int G>
void check(int L, bool accumulate, float lse_mean = 2.f, float qk_sd = 1.f) {
  INFO("d " << D << ", G " << G << ", L " << L << ", accumulate " << accumulate << ", lse mean " << lse_mean);
  // q, o, dout, dq: [B, T, Hq, D] with a padded head stride; depth rows: slots [1, 1 + L) of a
  // stream [B, T, S, Hk, D], so slot 0 and the slots after them must stay untouched.
  const int B = 2, T = 2, Hk = 2, Hq = Hk * G, S = L + 3, first = 1;
  const double scale = 1.0 / std::sqrt(double(D));
  const int64_t qh = D + 8, qt = Hq * qh, qb = T * qt;
  const ModaStrides qs{qb, qt, 0, qh}, ds{int64_t(T) * S * Hk * D, int64_t(S) * Hk * D, int64_t(Hk) * D, D};
  const int64_t off = int64_t(first) * Hk * D, stream_n = int64_t(B) * T * S * Hk * D;
  const Bf q = random_bf16(B * qb, qk_sd, 1), o = random_bf16(B * qb, 1, 2), dout = random_bf16(B * qb, 1, 3),
           dq_in = random_bf16(B * qb, 1, 4), kst = random_bf16(stream_n, qk_sd, 5), vst = random_bf16(stream_n, 1, 6),
           dk_in = random_bf16(stream_n, 0.1f, 7), dv_in = random_bf16(stream_n, 0.1f, 8);
  std::vector<float> lse(B * Hq * T);
  std::mt19937 rng(9);
  for (auto& x : lse) x = std::normal_distribution<float>(lse_mean, 1.f)(rng);
  ModaAttentionShape s;
  s.B = B, s.T = T, s.Hq = Hq, s.Hk = Hk, s.L = L, s.d = D;
  auto qi = [&](int b, int t, int h, int i) { return b * qb + t * qt + h * qh + i; };
  auto di = [&](int b, int t, int l, int hk, int i) {
    return off + b * ds.batch + t * ds.token + l * ds.slot + hk * D + i;
  };
  auto lsei = [&](int b, int h, int t) { return (b * Hq + h) * T + t; };

  // Forward merge: o and lse hold an arbitrary "sequence part" on entry.
  Bf o_out = o;
  std::vector<float> lse_out = lse;
  run_grid(depth_params(s, q.data(), qs, kst.data() + off, ds, vst.data() + off, ds, o_out.data(), qs, lse_out.data()),
           [](const DepthParams& p) { depth_merge_forward<D, G>(p); });
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < Hq; ++h) {
        std::vector<double> sc(L);
        const double ls = lse[lsei(b, h, t)];
        double m = ls;
        for (int l = 0; l < L; ++l) {
          double x = 0;
          for (int i = 0; i < D; ++i) x += f(q[qi(b, t, h, i)]) * f(kst[di(b, t, l, h / G, i)]);
          sc[l] = x * scale, m = std::max(m, sc[l]);
        }
        double den = std::exp(ls - m);
        for (int l = 0; l < L; ++l) den += std::exp(sc[l] - m);
        CHECK(std::abs(m + std::log(den) - lse_out[lsei(b, h, t)]) < 1e-4);
        for (int i = 0; i < D; ++i) {
          double num = std::exp(ls - m) * f(o[qi(b, t, h, i)]);
          for (int l = 0; l < L; ++l) num += std::exp(sc[l] - m) * f(vst[di(b, t, l, h / G, i)]);
          CHECK(std::abs(num / den - f(o_out[qi(b, t, h, i)])) < 1e-2 * (1 + std::abs(num / den)));
        }
      }

  // Depth backward, from o as given (any values serve) and the merged lse (so p <= 1, as in use).
  Bf dq = dq_in, dk = dk_in, dv = dv_in;
  DepthParams p =
      depth_params(s, q.data(), qs, kst.data() + off, ds, vst.data() + off, ds, o.data(), qs, lse_out.data());
  p.dout = dout.data(), p.do_b = qb, p.do_t = qt, p.do_h = qh;
  p.dq = dq.data(), p.dq_b = qb, p.dq_t = qt, p.dq_h = qh;
  p.dkd = dk.data() + off, p.dkd_b = ds.batch, p.dkd_t = ds.token, p.dkd_s = ds.slot, p.dkd_h = ds.head;
  p.dvd = dv.data() + off, p.dvd_b = ds.batch, p.dvd_t = ds.token, p.dvd_s = ds.slot, p.dvd_h = ds.head;
  p.accumulate = accumulate;
  run_grid(p, [](const DepthParams& pp) { depth_backward<D, G>(pp); });
  auto close = [](double want, double got) { return std::abs(want - got) < 1e-2 * (1 + std::abs(want)); };
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int hk = 0; hk < Hk; ++hk) {
        std::vector<double> dkr(L * D, 0), dvr(L * D, 0);
        for (int h = hk * G; h < (hk + 1) * G; ++h) {
          double Dr = 0;
          for (int i = 0; i < D; ++i) Dr += f(dout[qi(b, t, h, i)]) * f(o[qi(b, t, h, i)]);
          std::vector<double> dqr(D, 0);
          for (int l = 0; l < L; ++l) {
            double x = 0, dp = 0;
            for (int i = 0; i < D; ++i)
              x += f(q[qi(b, t, h, i)]) * f(kst[di(b, t, l, hk, i)]),
                  dp += f(dout[qi(b, t, h, i)]) * f(vst[di(b, t, l, hk, i)]);
            const double pr = std::exp(x * scale - lse_out[lsei(b, h, t)]), dsr = pr * (dp - Dr);
            for (int i = 0; i < D; ++i) {
              dqr[i] += scale * dsr * f(kst[di(b, t, l, hk, i)]);
              dkr[l * D + i] += scale * dsr * f(q[qi(b, t, h, i)]);
              dvr[l * D + i] += pr * f(dout[qi(b, t, h, i)]);
            }
          }
          for (int i = 0; i < D; ++i) CHECK(close(f(dq_in[qi(b, t, h, i)]) + dqr[i], f(dq[qi(b, t, h, i)])));
        }
        for (int l = 0; l < L; ++l)
          for (int i = 0; i < D; ++i) {
            const int64_t k = di(b, t, l, hk, i);
            CHECK(close(dkr[l * D + i] + (accumulate ? f(dk_in[k]) : 0.0), f(dk[k])));
            CHECK(close(dvr[l * D + i] + (accumulate ? f(dv_in[k]) : 0.0), f(dv[k])));
          }
      }
  int touched = 0;  // slots outside [first, first + L): bit for bit as they were
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int sl = 0; sl < S; ++sl)
        if (sl < first || sl >= first + L)
          for (int i = 0; i < Hk * D; ++i) {
            const int64_t k = b * ds.batch + t * ds.token + sl * ds.slot + i;
            touched += dk[k].bits != dk_in[k].bits || dv[k].bits != dv_in[k].bits;
          }
  CHECK(touched == 0);
}

}  // namespace

// L 1, 5 (fewer slots than one pass of row groups), 70 (many passes, a partial last one); G 1-4
// at d 64, 3 at d 128 (half as many row groups per warp); both write modes of the depth gradients.
TEST_CASE("cuda depth kernels (CPU lane emulation): merge forward and depth backward match float64", "[cpu][moda]") {
  for (int L : {1, 5, 70}) {
    const bool accumulate = L != 5;
    check<64, 1>(L, accumulate), check<64, 2>(L, accumulate), check<64, 3>(L, accumulate);
    check<64, 4>(L, accumulate), check<128, 3>(L, !accumulate);
  }
  check<64, 3>(70, true, -12.f, 2.5f), check<128, 2>(9, false, -12.f, 2.5f);
}
