// CUDA dense kernels against the CPU kernels (float64 references) on fresh random inputs with odd
// sizes; device outputs are poisoned with NaN (all bits set) before every kernel runs.
// "[gpu][ops]": correctness. "[.][gpu][bench]": timings for docs/benchmarks-dense.md (run explicitly).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/cuda_check.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/attention_reference.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/grad_norm.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/attention_reference.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/grad_norm.h"
#include "kernels/cuda/matmul.h"
#include "tests/compare.h"

using moda::bf16;

using moda::test::rel_l2;

namespace {

// Device buffer of n T's; poison() fills every byte with 0xff (NaN for f32 and bf16).
template <typename T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) { MODA_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)), "test"); }
  explicit Dev(const std::vector<T>& h) : Dev(h.size()) { upload(h); }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  void upload(const std::vector<T>& h) {
    MODA_CUDA_CHECK(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice), "test upload");
  }
  void poison() { MODA_CUDA_CHECK(cudaMemset(p, 0xff, n * sizeof(T)), "test poison"); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    MODA_CUDA_CHECK(cudaDeviceSynchronize(), "test sync");
    MODA_CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), "test download");
    return h;
  }
};

double to_d(float x) { return x; }
double to_d(double x) { return x; }
double to_d(bf16 x) { return moda::bf16_to_float(x); }
template <typename T>
T from_d(double x);
template <>
float from_d<float>(double x) {
  return float(x);
}
template <>
bf16 from_d<bf16>(double x) {
  return moda::float_to_bf16(float(x));
}

template <typename T>
std::vector<T> randn(size_t n, uint32_t seed, double sd = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist(0.0, sd);
  std::vector<T> v(n);
  for (auto& x : v) x = from_d<T>(dist(rng));
  return v;
}

template <typename T>
std::vector<double> to_double(const std::vector<T>& v) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = to_d(v[i]);
  return d;
}

template <typename T>
constexpr double tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-2;
}

}  // namespace

TEMPLATE_TEST_CASE("dense cuda: matmul matches the CPU for transposes, alpha/beta, batches, bias", "[gpu][ops]", float,
                   bf16) {
  uint32_t seed = 100;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      moda::GemmDesc d;
      d.m = 37, d.n = 1001, d.k = 129, d.trans_a = ta, d.trans_b = tb, d.alpha = 0.5f, d.beta = 0.f, d.batch = 2;
      d.stride_b = ta ? 0 : -1;  // a shared (broadcast) B half of the time
      const moda::GemmDesc g = d.resolved();
      const size_t na = g.stride_a * g.batch, nb = std::max<int64_t>(g.stride_b * g.batch, g.k * g.n),
                   nc = g.stride_c * g.batch;
      auto a = randn<TestType>(na, seed++), b = randn<TestType>(nb, seed++), bias = randn<TestType>(g.n, seed++);
      auto c0 = randn<float>(nc, seed++);
      auto ad = to_double(a), bd = to_double(b), ref = to_double(c0);
      // beta = 0 over poison, with bias; then beta = 1 accumulation into an fp32 C.
      std::vector<double> ref0(nc);
      moda::cpu::matmul<double>(d, ad.data(), bd.data(), ref0.data());
      for (size_t i = 0; i < nc; ++i) ref0[i] += to_d(bias[i % g.n]);
      Dev<TestType> A(a), B(b), BIAS(bias), C(nc);
      C.poison();
      moda::cuda::matmul(d, A.p, B.p, C.p, BIAS.p, 0);
      INFO("trans_a=" << ta << " trans_b=" << tb);
      CHECK(rel_l2(C.get(), ref0) < tol<TestType>());

      moda::GemmDesc acc = d;
      acc.beta = 1.f;
      moda::cpu::matmul<double>(acc, ad.data(), bd.data(), ref.data());
      Dev<float> C32(c0);
      moda::cuda::matmul(acc, A.p, B.p, C32.p, nullptr, 0);
      CHECK(rel_l2(C32.get(), ref) < (std::is_same_v<TestType, float> ? 1e-5 : 1e-3));
    }
  // A repeated shape is served from the plan cache.
  moda::GemmDesc d;
  d.m = 37, d.n = 1001, d.k = 129, d.alpha = 0.5f, d.batch = 2;
  const moda::GemmDesc g = d.resolved();
  Dev<TestType> A(g.stride_a * 2), B(g.stride_b * 2), C(g.stride_c * 2);
  A.poison(), B.poison();
  moda::cuda::matmul(d, A.p, B.p, C.p, nullptr, 0);
  const size_t plans = moda::cuda::matmul_plan_cache_size();
  moda::cuda::matmul(d, A.p, B.p, C.p, nullptr, 0);
  MODA_CUDA_CHECK(cudaDeviceSynchronize(), "test");
  CHECK(moda::cuda::matmul_plan_cache_size() == plans);
}

TEST_CASE("dense cuda: autotuned matmul with beta = 1 adds A B once per call, and the plan report lists it",
          "[gpu][ops]") {
  // Weight-gradient form: bf16 inputs, fp32 C, beta = 1, A transposed, a shape cuBLASLt has several
  // algorithms for. The first call times the candidates (unless MODA_GEMM_AUTOTUNE=0); those timing
  // runs must not accumulate into C: after n calls C = C0 + n A^T B, not C0 + (n + extra) A^T B.
  if (!moda::cuda::matmul_autotune_enabled()) WARN("MODA_GEMM_AUTOTUNE=0: the autotuning path is not exercised");
  moda::GemmDesc d;
  d.m = 384, d.n = 1024, d.k = 2048, d.trans_a = true, d.beta = 1.f;
  auto a = randn<bf16>(d.k * d.m, 300), b = randn<bf16>(d.k * d.n, 301);
  auto c0 = randn<float>(d.m * d.n, 302);
  moda::GemmDesc p = d;
  p.beta = 0.f;
  std::vector<double> prod(d.m * d.n);
  moda::cpu::matmul<double>(p, to_double(a).data(), to_double(b).data(), prod.data());
  Dev<bf16> A(a), B(b);
  Dev<float> C(c0);
  for (int calls = 1; calls <= 2; ++calls) {
    moda::cuda::matmul(d, A.p, B.p, C.p, nullptr, 0);
    std::vector<double> ref(prod.size());
    for (size_t i = 0; i < ref.size(); ++i) ref[i] = c0[i] + calls * prod[i];
    INFO("after call " << calls);
    CHECK(rel_l2(C.get(), ref) < 1e-3);
  }
  // beta = 0 at the same shape (its own plan, timed in place over a poisoned C): the real run after
  // the timing leaves exactly A^T B.
  Dev<float> C2(prod.size());
  C2.poison();
  moda::cuda::matmul(p, A.p, B.p, C2.p, nullptr, 0);
  CHECK(rel_l2(C2.get(), prod) < 1e-3);

  const std::string report = moda::cuda::matmul_plan_report();
  INFO(report);
  std::istringstream lines(report);
  std::string line, found;
  while (std::getline(lines, line))
    if (found.empty() && line.find("bf16->f32 m=384 n=1024 k=2048 ta=1 tb=0 batch=1 beta0=0 ") != std::string::npos)
      found = line;
  REQUIRE(!found.empty());
  const size_t at = found.find("candidates=");
  REQUIRE(at != std::string::npos);
  const int candidates = std::stoi(found.substr(at + std::string("candidates=").size()));
  CHECK(candidates >= 1);
  if (candidates > 1 && moda::cuda::matmul_autotune_enabled()) CHECK(found.find("tuned_us=") != std::string::npos);
}

TEST_CASE("dense cuda: matmul k = 0 scales C, fp32 stays fp32 (no TF32)", "[gpu][ops]") {
  moda::GemmDesc d;
  d.m = 3, d.n = 5, d.k = 0, d.beta = 0.5f;
  auto c = randn<float>(15, 7);
  Dev<float> A(1), B(1), C(c);
  moda::cuda::matmul(d, A.p, B.p, C.p, nullptr, 0);
  auto got = C.get();
  for (int i = 0; i < 15; ++i) CHECK(got[i] == 0.5f * c[i]);
  // Inputs with more mantissa than TF32 keeps (10 bits): a TF32 product would be off by ~1e-4.
  moda::GemmDesc e;
  e.m = 33, e.n = 65, e.k = 257;
  auto a = randn<float>(e.m * e.k, 8), b = randn<float>(e.k * e.n, 9);
  std::vector<double> ref(e.m * e.n);
  moda::cpu::matmul<double>(e, to_double(a).data(), to_double(b).data(), ref.data());
  Dev<float> A2(a), B2(b), C2(e.m * e.n);
  C2.poison();
  moda::cuda::matmul(e, A2.p, B2.p, C2.p, nullptr, 0);
  CHECK(rel_l2(C2.get(), ref) < 1e-6);
}

TEMPLATE_TEST_CASE("dense cuda: bias backward sums columns into fp32", "[gpu][ops]", float, bf16) {
  const int64_t m = 1037, n = 333, ld = 341;
  auto dy = randn<TestType>(m * ld, 11);
  auto db0 = randn<float>(n, 12);
  std::vector<double> dyd = to_double(dy), ref = to_double(db0);
  moda::cpu::bias_backward<double>(dyd.data(), ref.data(), m, n, ld);
  Dev<TestType> DY(dy);
  Dev<float> DB(db0);
  moda::cuda::bias_backward(DY.p, DB.p, m, n, ld, 0);
  CHECK(rel_l2(DB.get(), ref) < 1e-5);
}

TEMPLATE_TEST_CASE("dense cuda: embedding forward and deterministic backward match the CPU", "[gpu][ops]", float,
                   bf16) {
  const int64_t vocab = 1001, dim = 129, n = 777;
  auto table = randn<TestType>(vocab * dim, 20), dout = randn<TestType>(n * dim, 21);
  auto dt0 = randn<float>(vocab * dim, 22);
  std::mt19937 rng(23);
  std::vector<int64_t> ids64(n);
  for (auto& id : ids64) id = rng() % 2 == 0 ? rng() % 17 : rng() % vocab;  // many repeats
  ids64[3] = vocab - 1;
  std::vector<int32_t> ids32(ids64.begin(), ids64.end());
  auto td = to_double(table), gd = to_double(dout);
  std::vector<double> out_ref(n * dim), dt_ref = to_double(dt0);
  moda::cpu::embedding_forward(td.data(), ids64.data(), out_ref.data(), n, vocab, dim);
  moda::cpu::embedding_backward(gd.data(), ids64.data(), dt_ref.data(), n, vocab, dim);
  Dev<TestType> T(table), DO(dout), OUT(n * dim);
  Dev<int64_t> I64(ids64);
  Dev<int32_t> I32(ids32);
  for (int w = 0; w < 2; ++w) {
    OUT.poison();
    if (w == 0)
      moda::cuda::embedding_forward(T.p, I32.p, OUT.p, n, vocab, dim, 0);
    else
      moda::cuda::embedding_forward(T.p, I64.p, OUT.p, n, vocab, dim, 0);
    CHECK(rel_l2(OUT.get(), out_ref) == 0.0);
    Dev<float> DT(dt0);
    if (w == 0)
      moda::cuda::embedding_backward(DO.p, I32.p, DT.p, n, vocab, dim, 0);
    else
      moda::cuda::embedding_backward(DO.p, I64.p, DT.p, n, vocab, dim, 0);
    const auto first = DT.get();
    CHECK(rel_l2(first, dt_ref) < 1e-6);
    DT.upload(dt0);
    moda::cuda::embedding_backward(DO.p, I32.p, DT.p, n, vocab, dim, 0);
    CHECK(DT.get() == first);  // bit for bit, run to run
  }
  moda::cuda::embedding_check_ids(0);  // nothing flagged so far
  ids32[100] = int32_t(vocab);
  I32.upload(ids32);
  moda::cuda::embedding_forward(T.p, I32.p, OUT.p, n, vocab, dim, 0);
  CHECK_THROWS_WITH(moda::cuda::embedding_check_ids(0), Catch::Contains("token id 1001 at position 100"));
  moda::cuda::embedding_check_ids(0);  // flag cleared
}

TEMPLATE_TEST_CASE("dense cuda: cross-entropy forward/backward match the CPU for V = 50304 and 1001", "[gpu][ops]",
                   float, bf16) {
  for (int64_t v : {int64_t(50304), int64_t(1001), int64_t(100278)}) {
    const int64_t n = 37, ignore = -1;
    auto logits = randn<TestType>(n * v, uint32_t(30 + v), 2.0);
    std::mt19937 rng(31);
    std::vector<int64_t> t64(n);
    for (auto& t : t64) t = rng() % v;
    t64[0] = v - 1, t64[5] = ignore, t64[36] = ignore;
    std::vector<int32_t> t32(t64.begin(), t64.end());
    auto ld = to_double(logits);
    std::vector<double> row_ref(n), lse_ref(n), dl_ref(n * v);
    double mean_ref = 0, dloss = 1.3;
    int64_t count_ref = 0;
    moda::cpu::cross_entropy_forward(ld.data(), t64.data(), row_ref.data(), lse_ref.data(), &mean_ref, &count_ref, n, v,
                                     ignore);
    moda::cpu::cross_entropy_backward(ld.data(), t64.data(), lse_ref.data(), &dloss, &count_ref, dl_ref.data(), n, v,
                                      ignore);
    Dev<TestType> L(logits), DL(n * v);
    Dev<int32_t> T32(t32);
    Dev<int64_t> T64(t64);
    Dev<float> ROW(n), LSE(n), MEAN(1), DLOSS(std::vector<float>{float(dloss)});
    Dev<int64_t> COUNT(1);
    for (int w = 0; w < 2; ++w) {
      ROW.poison(), LSE.poison(), MEAN.poison(), COUNT.poison(), DL.poison();
      if (w == 0) {
        moda::cuda::cross_entropy_forward(L.p, T32.p, ROW.p, LSE.p, MEAN.p, COUNT.p, n, v, ignore, 0);
        moda::cuda::cross_entropy_backward(L.p, T32.p, LSE.p, DLOSS.p, COUNT.p, DL.p, n, v, ignore, 0);
      } else {
        moda::cuda::cross_entropy_forward(L.p, T64.p, ROW.p, LSE.p, MEAN.p, COUNT.p, n, v, ignore, 0);
        moda::cuda::cross_entropy_backward(L.p, T64.p, LSE.p, DLOSS.p, COUNT.p, DL.p, n, v, ignore, 0);
      }
      INFO("v=" << v << " int" << (w == 0 ? 32 : 64));
      CHECK(rel_l2(ROW.get(), row_ref) < 1e-5);
      CHECK(rel_l2(LSE.get(), lse_ref) < 1e-6);
      CHECK(rel_l2(MEAN.get(), std::vector<double>{mean_ref}) < 1e-5);
      CHECK(COUNT.get()[0] == count_ref);
      CHECK(rel_l2(DL.get(), dl_ref) < tol<TestType>());
    }
    // In place: the gradient overwrites the logits.
    moda::cuda::cross_entropy_backward(L.p, T32.p, LSE.p, DLOSS.p, COUNT.p, L.p, n, v, ignore, 0);
    CHECK(rel_l2(L.get(), dl_ref) < tol<TestType>());
  }
  moda::cuda::cross_entropy_check_targets(0);
  const int64_t n = 4, v = 1001;
  Dev<TestType> L(randn<TestType>(n * v, 40));
  Dev<int32_t> T(std::vector<int32_t>{1, 2, 1001, 3});
  Dev<float> ROW(n), LSE(n), MEAN(1);
  Dev<int64_t> COUNT(1);
  moda::cuda::cross_entropy_forward(L.p, T.p, ROW.p, LSE.p, MEAN.p, COUNT.p, n, v, -1, 0);
  CHECK_THROWS_WITH(moda::cuda::cross_entropy_check_targets(0), Catch::Contains("target 1001 at row 2"));
}

TEMPLATE_TEST_CASE("dense cuda: reference attention forward/backward match the CPU (G = 3)", "[gpu][ops]", float,
                   bf16) {
  for (int64_t T : {int64_t(17), int64_t(100)})
    for (bool causal : {true, false}) {
      moda::AttentionShape s;
      s.batch = 2, s.seq = T, s.heads_q = 6, s.heads_kv = 2, s.head_dim = 20, s.causal = causal;
      const size_t nq = s.batch * s.seq * s.heads_q * s.head_dim, nkv = s.batch * s.seq * s.heads_kv * s.head_dim,
                   nl = s.batch * s.heads_q * s.seq;
      auto q = randn<TestType>(nq, 50), k = randn<TestType>(nkv, 51), v = randn<TestType>(nkv, 52),
           dout = randn<TestType>(nq, 53);
      auto qd = to_double(q), kd = to_double(k), vd = to_double(v), dod = to_double(dout);
      std::vector<double> out_ref(nq), lse_ref(nl), dq_ref(nq), dk_ref(nkv), dv_ref(nkv);
      moda::cpu::attention_reference_forward(s, qd.data(), kd.data(), vd.data(), out_ref.data(), lse_ref.data());
      moda::cpu::attention_reference_backward(s, qd.data(), kd.data(), vd.data(), dod.data(), dq_ref.data(),
                                              dk_ref.data(), dv_ref.data());
      Dev<TestType> Q(q), K(k), V(v), DO(dout), O(nq), DQ(nq), DK(nkv), DV(nkv);
      Dev<float> LSE(nl);
      O.poison(), LSE.poison(), DQ.poison(), DK.poison(), DV.poison();
      moda::cuda::attention_reference_forward(s, Q.p, K.p, V.p, O.p, LSE.p, 0);
      moda::cuda::attention_reference_backward(s, Q.p, K.p, V.p, DO.p, DQ.p, DK.p, DV.p, 0);
      INFO("T=" << T << " causal=" << causal);
      CHECK(rel_l2(O.get(), out_ref) < tol<TestType>());
      CHECK(rel_l2(LSE.get(), lse_ref) < (std::is_same_v<TestType, float> ? 1e-6 : 1e-3));
      CHECK(rel_l2(DQ.get(), dq_ref) < tol<TestType>());
      CHECK(rel_l2(DK.get(), dk_ref) < tol<TestType>());
      CHECK(rel_l2(DV.get(), dv_ref) < tol<TestType>());
    }
}

TEMPLATE_TEST_CASE("dense cuda: AdamW step matches the CPU, with bf16 weight copy and device grad scale", "[gpu][ops]",
                   float, bf16) {
  for (int64_t offset : {int64_t(0), int64_t(1)}) {  // offset 1: unaligned, scalar path
    const int64_t n = 100003;
    moda::AdamWParams hp;
    hp.lr = 1e-3, hp.beta1 = 0.9, hp.beta2 = 0.95, hp.eps = 1e-8, hp.weight_decay = 0.1;
    auto p = randn<float>(n + offset, 60), m = randn<float>(n + offset, 61, 0.01), v = randn<float>(n + offset, 62);
    for (auto& x : v) x = x * x * 1e-4f;
    auto g = randn<TestType>(n + offset, 63);
    std::vector<double> pr = to_double(p), mr = to_double(m), vr = to_double(v), gr = to_double(g);
    const float scale = 0.37f;
    Dev<float> P(p), M(m), Vv(v), S(std::vector<float>{scale});
    Dev<TestType> G(g);
    Dev<bf16> PB(n + offset);
    PB.poison();
    for (int64_t step = 1; step <= 2; ++step) {
      hp.step = step;
      moda::cpu::adamw_step<double>(hp, pr.data() + offset, gr.data() + offset, mr.data() + offset, vr.data() + offset,
                                    n, nullptr, scale);
      moda::cuda::adamw_step(hp, P.p + offset, G.p + offset, M.p + offset, Vv.p + offset, n, PB.p + offset, S.p, 0);
    }
    INFO("offset=" << offset);
    const auto pg = P.get();
    CHECK(rel_l2(pg, pr) < 1e-6);
    CHECK(rel_l2(M.get(), mr) < 1e-6);
    CHECK(rel_l2(Vv.get(), vr) < 1e-6);
    const auto pb = PB.get();
    bool same = true;
    for (int64_t i = offset; i < n + offset; ++i) same = same && pb[i].bits == moda::float_to_bf16(pg[i]).bits;
    CHECK(same);
    // Host-scalar overload gives the same bits as the device-scalar one.
    Dev<float> P2(p), M2(m), V2(v);
    hp.step = 1;
    moda::cuda::adamw_step(hp, P2.p + offset, G.p + offset, M2.p + offset, V2.p + offset, n, nullptr, double(scale), 0);
    Dev<float> P3(p), M3(m), V3(v);
    moda::cuda::adamw_step(hp, P3.p + offset, G.p + offset, M3.p + offset, V3.p + offset, n, nullptr, S.p, 0);
    CHECK(P2.get() == P3.get());
  }
}

TEST_CASE("dense cuda: global grad norm is deterministic and matches the CPU, clipping scales", "[gpu][ops]") {
  // 70 spans (more than one launch's 64), odd sizes, one unaligned, one bf16, one empty.
  std::vector<std::vector<float>> host;
  std::vector<int64_t> sizes;
  for (int i = 0; i < 70; ++i) sizes.push_back(i == 3 ? 1000003 : i == 4 ? 0 : 37 + 101 * i);
  double sumsq = 0;
  std::vector<std::unique_ptr<Dev<float>>> bufs;
  std::vector<moda::cuda::GradSpan> spans;
  for (int i = 0; i < 70; ++i) {
    host.push_back(randn<float>(sizes[i] + 1, 70 + i, 0.1));
    bufs.push_back(std::make_unique<Dev<float>>(host.back()));
    const int off = i == 7 ? 1 : 0;
    for (int64_t j = 0; j < sizes[i]; ++j) sumsq += double(host[i][j + off]) * host[i][j + off];
    spans.push_back({bufs.back()->p + off, sizes[i], false});
  }
  auto hb = randn<bf16>(12345, 200, 0.1);
  for (auto x : hb) sumsq += to_d(x) * to_d(x);
  Dev<bf16> B(hb);
  spans.push_back({B.p, int64_t(hb.size()), true});
  Dev<float> NORM(1), CLIP(1);
  NORM.poison(), CLIP.poison();
  moda::cuda::grad_norm(spans.data(), int64_t(spans.size()), NORM.p, CLIP.p, 1.0, 0);
  const float norm = NORM.get()[0];
  CHECK(norm == Approx(std::sqrt(sumsq)).epsilon(1e-6));
  CHECK(CLIP.get()[0] == Approx(moda::clip_coefficient(norm, 1.0)).epsilon(1e-6));
  moda::cuda::grad_norm(spans.data(), int64_t(spans.size()), NORM.p, nullptr, 1.0, 0);
  CHECK(NORM.get()[0] == norm);  // bit for bit
  {
    std::vector<float> hf(hb.size());
    for (size_t i = 0; i < hb.size(); ++i) hf[i] = moda::bf16_to_float(hb[i]);
    const float* ptr = hf.data();
    const int64_t nn = int64_t(hf.size());
    CHECK(moda::cuda::grad_norm(B.p, nn, 0) == Approx(moda::cpu::grad_norm<float>(&ptr, &nn, 1)).epsilon(1e-9));
  }
  // Clip to max_norm 2: afterwards the norm is 2 (to float rounding).
  Dev<float> N2(1), C2(1);
  moda::cuda::clip_grad_norm(spans.data(), int64_t(spans.size()), 2.0, N2.p, C2.p, 0);
  CHECK(N2.get()[0] == norm);
  moda::cuda::grad_norm(spans.data(), int64_t(spans.size()), NORM.p, nullptr, 0.0, 0);
  CHECK(NORM.get()[0] == Approx(2.0).epsilon(1e-3));
  // Scale 1 leaves everything untouched.
  const auto before = bufs[3]->get();
  Dev<float> ONE(std::vector<float>{1.f});
  moda::cuda::scale_grads(spans.data(), int64_t(spans.size()), ONE.p, 0);
  CHECK(bufs[3]->get() == before);
}

// ------------------------------------------------------------------------------------------------
// Benchmarks (not part of the test run: "[.]"). Median of 20 timed runs after 3 warm-ups.

namespace {
// Large benchmark inputs: a 1 Mi-element random block repeated (generating 10^8 normals takes too long).
template <typename T>
std::vector<T> rand_tiled(size_t n, uint32_t seed) {
  const auto block = randn<T>(std::min<size_t>(n, size_t(1) << 20), seed);
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = block[i % block.size()];
  return v;
}

template <typename F>
double median_ms(F&& f, int reps = 20) {
  cudaEvent_t a, b;
  cudaEventCreate(&a), cudaEventCreate(&b);
  for (int i = 0; i < 3; ++i) f();
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a, 0);
    f();
    cudaEventRecord(b, 0);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  cudaEventDestroy(a), cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
}  // namespace

TEST_CASE("dense cuda bench: GEMM, cross-entropy, AdamW, grad norm, embedding", "[.][gpu][bench]") {
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("BENCH device: %s\n", prop.name);
  auto gemm = [&](const char* what, int64_t m, int64_t n, int64_t k, bool ta, bool tb, int kind) {
    moda::GemmDesc d;
    d.m = m, d.n = n, d.k = k, d.trans_a = ta, d.trans_b = tb, d.allow_tf32 = kind == 3;
    double ms = 0;
    if (kind == 0) {  // bf16 -> bf16
      Dev<bf16> A(rand_tiled<bf16>(m * k, 1)), B(rand_tiled<bf16>(k * n, 2)), C(m * n);
      ms = median_ms([&] { moda::cuda::matmul(d, A.p, B.p, C.p, nullptr, 0); });
    } else if (kind == 1) {  // bf16 -> fp32, beta = 1 (weight-gradient accumulation)
      d.beta = 1.f;
      Dev<bf16> A(rand_tiled<bf16>(m * k, 1)), B(rand_tiled<bf16>(k * n, 2));
      Dev<float> C(m * n);
      cudaMemset(C.p, 0, m * n * 4);
      ms = median_ms([&] { moda::cuda::matmul(d, A.p, B.p, C.p, nullptr, 0); });
    } else {  // fp32 (2), tf32 (3)
      Dev<float> A(rand_tiled<float>(m * k, 1)), B(rand_tiled<float>(k * n, 2)), C(m * n);
      ms = median_ms([&] { moda::cuda::matmul(d, A.p, B.p, C.p, nullptr, 0); }, kind == 2 ? 5 : 20);
    }
    std::printf("BENCH gemm %-28s m=%ld n=%ld k=%ld ta=%d tb=%d: %.3f ms, %.1f TFLOP/s\n", what, (long)m, (long)n,
                (long)k, ta, tb, ms, 2.0 * m * n * k / ms / 1e9);
  };
  gemm("bf16 8192^3", 8192, 8192, 8192, false, false, 0);
  gemm("bf16 8192^3 (x W^T)", 8192, 8192, 8192, false, true, 0);
  {  // cuBLAS classic GemmEx, the same product, as the baseline
    const int64_t N = 8192;
    Dev<bf16> A(rand_tiled<bf16>(N * N, 1)), B(rand_tiled<bf16>(N * N, 2)), C(N * N);
    cublasHandle_t h;
    cublasCreate(&h);
    const float one = 1.f, zero = 0.f;
    const double ms = median_ms([&] {
      cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, N, N, N, &one, B.p, CUDA_R_16BF, N, A.p, CUDA_R_16BF, N, &zero, C.p,
                   CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    });
    cublasDestroy(h);
    std::printf("BENCH gemm %-28s m=8192 n=8192 k=8192: %.3f ms, %.1f TFLOP/s\n", "cublasGemmEx bf16 baseline", ms,
                2.0 * N * N * N / ms / 1e9);
  }
  gemm("bf16 qkv fwd (16k tok)", 16384, 2048, 1024, false, true, 0);
  gemm("bf16 mlp down dx", 16384, 1024, 4096, false, false, 0);
  gemm("bf16->f32 dW += dy^T x", 4096, 1024, 16384, true, false, 1);
  gemm("bf16 lm head 8k x 50304", 8192, 50304, 1024, false, true, 0);
  gemm("f32 4096^3", 4096, 4096, 4096, false, false, 2);
  gemm("tf32 4096^3", 4096, 4096, 4096, false, false, 3);

  for (int64_t v : {int64_t(50304), int64_t(100278)}) {
    const int64_t n = 8192;
    Dev<bf16> L(rand_tiled<bf16>(n * v, 3)), DL(n * v);
    std::vector<int32_t> t(n);
    for (int64_t i = 0; i < n; ++i) t[i] = int32_t((i * 7919) % v);
    Dev<int32_t> T(t);
    Dev<float> ROW(n), LSE(n), MEAN(1), DLOSS(std::vector<float>{1.f});
    Dev<int64_t> COUNT(1);
    const double f =
        median_ms([&] { moda::cuda::cross_entropy_forward(L.p, T.p, ROW.p, LSE.p, MEAN.p, COUNT.p, n, v, -1, 0); });
    const double b =
        median_ms([&] { moda::cuda::cross_entropy_backward(L.p, T.p, LSE.p, DLOSS.p, COUNT.p, DL.p, n, v, -1, 0); });
    const double bytes = double(n) * v * 2;
    std::printf("BENCH cross_entropy bf16 n=%ld v=%ld: fwd %.3f ms (%.0f GB/s), bwd %.3f ms (%.0f GB/s)\n", (long)n,
                (long)v, f, bytes / f / 1e6, b, 2 * bytes / b / 1e6);
  }
  {
    const int64_t n = 100000000;
    Dev<float> P(n), M(n), V(n), G(n);
    Dev<bf16> PB(n), GB(n);
    cudaMemset(P.p, 0, n * 4), cudaMemset(M.p, 0, n * 4), cudaMemset(V.p, 0, n * 4), cudaMemset(G.p, 0, n * 4);
    cudaMemset(GB.p, 0, n * 2);
    moda::AdamWParams hp;
    const double a = median_ms([&] { moda::cuda::adamw_step(hp, P.p, G.p, M.p, V.p, n, PB.p, nullptr, 0); });
    const double ab = median_ms([&] { moda::cuda::adamw_step(hp, P.p, GB.p, M.p, V.p, n, PB.p, nullptr, 0); });
    std::printf("BENCH adamw n=1e8 f32 grads + bf16 copy: %.3f ms (%.0f GB/s); bf16 grads: %.3f ms (%.0f GB/s)\n", a,
                30.0 * n / a / 1e6, ab, 28.0 * n / ab / 1e6);
    moda::cuda::GradSpan sp{G.p, n, false};
    Dev<float> NORM(1);
    const double g = median_ms([&] { moda::cuda::grad_norm(&sp, 1, NORM.p, nullptr, 1.0, 0); });
    std::printf("BENCH grad_norm n=1e8 f32: %.3f ms (%.0f GB/s)\n", g, 4.0 * n / g / 1e6);
  }
  {
    const int64_t vocab = 50304, dim = 1024, n = 16384;
    Dev<bf16> T(rand_tiled<bf16>(vocab * dim, 4)), O(n * dim), DO(rand_tiled<bf16>(n * dim, 5));
    Dev<float> DT(vocab * dim);
    std::vector<int32_t> ids(n);
    std::mt19937 rng(6);
    for (auto& id : ids) id = int32_t(rng() % vocab);
    Dev<int32_t> I(ids);
    const double f = median_ms([&] { moda::cuda::embedding_forward(T.p, I.p, O.p, n, vocab, dim, 0); });
    const double b = median_ms([&] { moda::cuda::embedding_backward(DO.p, I.p, DT.p, n, vocab, dim, 0); });
    std::printf("BENCH embedding bf16 n=%ld dim=%ld: fwd %.3f ms (%.0f GB/s), bwd %.3f ms (%.0f GB/s)\n", (long)n,
                (long)dim, f, 4.0 * n * dim / f / 1e6, b, (2.0 + 8.0) * n * dim / b / 1e6);
  }
  {
    moda::AttentionShape s;
    s.batch = 1, s.seq = 1024, s.heads_q = 16, s.heads_kv = 8, s.head_dim = 64;
    const size_t nq = s.seq * 16 * 64, nkv = s.seq * 8 * 64;
    Dev<bf16> Q(rand_tiled<bf16>(nq, 7)), K(rand_tiled<bf16>(nkv, 8)), V(rand_tiled<bf16>(nkv, 9)), O(nq), DQ(nq),
        DK(nkv), DV(nkv);
    const double f = median_ms([&] { moda::cuda::attention_reference_forward(s, Q.p, K.p, V.p, O.p, nullptr, 0); });
    const double b =
        median_ms([&] { moda::cuda::attention_reference_backward(s, Q.p, K.p, V.p, O.p, DQ.p, DK.p, DV.p, 0); });
    std::printf("BENCH attention_reference bf16 B=1 T=1024 Hq=16 Hk=8 d=64 causal: fwd %.3f ms, bwd %.3f ms\n", f, b);
  }
}
