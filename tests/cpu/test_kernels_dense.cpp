// CPU dense kernels (matmul, embedding, cross-entropy, reference attention, AdamW, grad norm) against
// naive double loops and, for the backward passes, central finite differences in float64.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/attention_reference.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/grad_norm.h"
#include "kernels/cpu/matmul.h"
#include "tests/compare.h"

using moda::test::rel_l2;

namespace {

template <typename T>
std::vector<T> randn(size_t n, uint32_t seed, double sd = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist(0.0, sd);
  std::vector<T> v(n);
  for (auto& x : v) x = T(dist(rng));
  return v;
}

template <typename T>
std::vector<T> poisoned(size_t n) {
  return std::vector<T>(n, std::numeric_limits<T>::quiet_NaN());
}

// Naive C = alpha op(A) op(B) + beta C in double over the resolved descriptor.
template <typename T>
void naive_gemm(const moda::GemmDesc& d, const std::vector<T>& a, const std::vector<T>& b, std::vector<double>& c) {
  const moda::GemmDesc g = d.resolved();
  for (int64_t z = 0; z < g.batch; ++z)
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < g.k; ++p) {
          const double av = a[z * g.stride_a + (g.trans_a ? p * g.lda + i : i * g.lda + p)];
          const double bv = b[z * g.stride_b + (g.trans_b ? j * g.ldb + p : p * g.ldb + j)];
          s += av * bv;
        }
        double& cv = c[z * g.stride_c + i * g.ldc + j];
        cv = g.alpha * s + (g.beta == 0 ? 0.0 : g.beta * cv);
      }
}

}  // namespace

TEMPLATE_TEST_CASE("dense: matmul matches naive loops for every transpose, alpha/beta, batch stride", "[cpu][ops]",
                   float, double) {
  const double tol = std::is_same_v<TestType, float> ? 1e-5 : 1e-12;
  uint32_t seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.f, 1.f, 0.5f}) {
        moda::GemmDesc d;
        d.m = 37, d.n = 41, d.k = 29, d.trans_a = ta, d.trans_b = tb, d.alpha = 0.75f, d.beta = beta, d.batch = 3;
        d.lda = (ta ? d.m : d.k) + 3;  // padded rows
        d.ldc = d.n + 5;
        d.stride_b = (tb % 2 == 0 && beta == 0.5f) ? 0 : -1;  // once in a while a broadcast B
        const moda::GemmDesc g = d.resolved();
        auto a = randn<TestType>(g.stride_a * g.batch, seed++);
        auto b = randn<TestType>(std::max<int64_t>(g.stride_b * g.batch, (tb ? g.n : g.k) * g.ldb), seed++);
        auto c = randn<TestType>(g.stride_c * g.batch, seed++);
        if (beta == 0.f) c = poisoned<TestType>(c.size());
        std::vector<double> ref(c.begin(), c.end());
        naive_gemm(d, a, b, ref);
        moda::cpu::matmul(d, a.data(), b.data(), c.data());
        // Compare only the m x n blocks (padding columns of C are not written by either).
        std::vector<double> got, want;
        for (int64_t z = 0; z < g.batch; ++z)
          for (int64_t i = 0; i < g.m; ++i)
            for (int64_t j = 0; j < g.n; ++j) {
              got.push_back(c[z * g.stride_c + i * g.ldc + j]);
              want.push_back(ref[z * g.stride_c + i * g.ldc + j]);
            }
        INFO("trans_a=" << ta << " trans_b=" << tb << " beta=" << beta);
        CHECK(rel_l2(got, want) < tol);
      }
}

TEST_CASE("dense: matmul rejects bad leading dimensions with a clear message", "[cpu][ops]") {
  moda::GemmDesc d;
  d.m = 4, d.n = 5, d.k = 6, d.lda = 3;
  std::vector<float> a(64), b(64), c(64);
  CHECK_THROWS_WITH(moda::cpu::matmul(d, a.data(), b.data(), c.data()), Catch::Contains("lda=3"));
  // k = 0: C = beta * C.
  moda::GemmDesc z;
  z.m = 2, z.n = 3, z.k = 0, z.beta = 0.5f;
  std::vector<float> cz{1, 2, 3, 4, 5, 6};
  moda::cpu::matmul(z, a.data(), b.data(), cz.data());
  CHECK(cz == std::vector<float>{0.5f, 1, 1.5f, 2, 2.5f, 3});
}

TEMPLATE_TEST_CASE("dense: bias add and bias backward", "[cpu][ops]", float, double) {
  const int64_t m = 13, n = 7, ld = 9;
  auto c = randn<TestType>(m * ld, 3), bias = randn<TestType>(n, 4), db = randn<TestType>(n, 5);
  auto c0 = c, db0 = db;
  moda::cpu::add_bias(c.data(), bias.data(), m, n, ld);
  moda::cpu::bias_backward(c0.data(), db.data(), m, n, ld);
  for (int64_t j = 0; j < n; ++j) {
    double s = db0[j];
    for (int64_t i = 0; i < m; ++i) {
      CHECK(c[i * ld + j] == Approx(double(c0[i * ld + j]) + double(bias[j])));
      s += c0[i * ld + j];
    }
    CHECK(db[j] == Approx(s).epsilon(1e-6));
  }
}

TEMPLATE_TEST_CASE("dense: embedding forward gathers rows, backward scatter-adds duplicates", "[cpu][ops]", int32_t,
                   int64_t) {
  const int64_t vocab = 23, dim = 11, n = 57;
  auto table = randn<double>(vocab * dim, 6), dout = randn<double>(n * dim, 7), dtable = randn<double>(vocab * dim, 8);
  std::mt19937 rng(9);
  std::vector<TestType> ids(n);
  for (auto& id : ids) id = TestType(rng() % 7);  // few distinct ids: many duplicates
  ids[5] = vocab - 1;
  auto out = poisoned<double>(n * dim);
  moda::cpu::embedding_forward(table.data(), ids.data(), out.data(), n, vocab, dim);
  std::vector<double> ref_out(n * dim), ref_dt = dtable;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < dim; ++j) {
      ref_out[i * dim + j] = table[ids[i] * dim + j];
      ref_dt[ids[i] * dim + j] += dout[i * dim + j];
    }
  CHECK(rel_l2(out, ref_out) == 0.0);
  moda::cpu::embedding_backward(dout.data(), ids.data(), dtable.data(), n, vocab, dim);
  CHECK(rel_l2(dtable, ref_dt) < 1e-14);

  ids[17] = TestType(vocab);
  CHECK_THROWS_WITH(moda::cpu::embedding_forward(table.data(), ids.data(), out.data(), n, vocab, dim),
                    Catch::Contains("token id 23 at position 17"));
  ids[17] = TestType(-2);
  CHECK_THROWS_WITH(moda::cpu::embedding_backward(dout.data(), ids.data(), dtable.data(), n, vocab, dim),
                    Catch::Contains("token id -2"));
}

TEST_CASE("dense: cross-entropy forward matches log-softmax, backward matches finite differences", "[cpu][ops]") {
  const int64_t n = 9, v = 31, ignore = -100;
  auto logits = randn<double>(n * v, 10, 3.0);
  std::vector<int64_t> targets(n);
  std::mt19937 rng(11);
  for (auto& t : targets) t = rng() % v;
  targets[2] = ignore, targets[7] = ignore;
  auto row = poisoned<double>(n), lse = poisoned<double>(n);
  double mean = NAN;
  int64_t count = -1;
  moda::cpu::cross_entropy_forward(logits.data(), targets.data(), row.data(), lse.data(), &mean, &count, n, v, ignore);
  CHECK(count == n - 2);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < v; ++j) s += std::exp(logits[i * v + j]);
    CHECK(lse[i] == Approx(std::log(s)).epsilon(1e-12));
    const double want = targets[i] == ignore ? 0.0 : std::log(s) - logits[i * v + targets[i]];
    CHECK(row[i] == Approx(want).epsilon(1e-12).margin(1e-14));
    total += want;
  }
  CHECK(mean == Approx(total / double(n - 2)).epsilon(1e-12));

  const double dloss = 1.7;
  auto dlogits = poisoned<double>(n * v);
  moda::cpu::cross_entropy_backward(logits.data(), targets.data(), lse.data(), &dloss, &count, dlogits.data(), n, v,
                                    ignore);
  auto loss_at = [&](std::vector<double>& x) {
    std::vector<double> r(n), l(n);
    double mm;
    int64_t cc;
    moda::cpu::cross_entropy_forward(x.data(), targets.data(), r.data(), l.data(), &mm, &cc, n, v, ignore);
    return mm * dloss;
  };
  std::vector<double> fd(n * v);
  const double h = 1e-6;
  for (int64_t i = 0; i < n * v; ++i) {
    auto x = logits;
    x[i] += h;
    const double up = loss_at(x);
    x[i] -= 2 * h;
    fd[i] = (up - loss_at(x)) / (2 * h);
  }
  CHECK(rel_l2(dlogits, fd) < 1e-7);

  // In place: dlogits may alias logits.
  auto inplace = logits;
  moda::cpu::cross_entropy_backward(inplace.data(), targets.data(), lse.data(), &dloss, &count, inplace.data(), n, v,
                                    ignore);
  CHECK(rel_l2(inplace, dlogits) == 0.0);

  targets[4] = v;
  CHECK_THROWS_WITH(moda::cpu::cross_entropy_forward(logits.data(), targets.data(), row.data(), lse.data(), &mean,
                                                     &count, n, v, ignore),
                    Catch::Contains("target 31 at row 4"));
}

TEST_CASE("dense: cross-entropy with every row ignored gives zero loss and zero gradient", "[cpu][ops]") {
  const int64_t n = 3, v = 5;
  auto logits = randn<float>(n * v, 12);
  std::vector<int32_t> targets(n, -1);
  std::vector<float> row(n), lse(n), d(n * v, NAN);
  float mean = NAN, dloss = 1.f;
  int64_t count = -1;
  moda::cpu::cross_entropy_forward(logits.data(), targets.data(), row.data(), lse.data(), &mean, &count, n, v);
  CHECK(count == 0);
  CHECK(mean == 0.f);
  moda::cpu::cross_entropy_backward(logits.data(), targets.data(), lse.data(), &dloss, &count, d.data(), n, v);
  for (float x : d) CHECK(x == 0.f);
}

namespace {
// Independent attention forward for the tests: materialises S = scale Q K^T per head, masks, softmaxes.
std::vector<double> attention_naive(const moda::AttentionShape& s, const std::vector<double>& q,
                                    const std::vector<double>& k, const std::vector<double>& v) {
  const int64_t T = s.seq, d = s.head_dim, Hq = s.heads_q, Hk = s.heads_kv, G = Hq / Hk;
  std::vector<double> out(q.size());
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      std::vector<double> S(T * T, -INFINITY);
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) {
          if (s.causal && j > i) continue;
          double dot = 0;
          for (int64_t c = 0; c < d; ++c)
            dot += q[((b * T + i) * Hq + h) * d + c] * k[((b * T + j) * Hk + h / G) * d + c];
          S[i * T + j] = dot / std::sqrt(double(d));
        }
      for (int64_t i = 0; i < T; ++i) {
        double m = -INFINITY, z = 0;
        for (int64_t j = 0; j < T; ++j) m = std::max(m, S[i * T + j]);
        for (int64_t j = 0; j < T; ++j) z += std::exp(S[i * T + j] - m);
        for (int64_t c = 0; c < d; ++c) {
          double o = 0;
          for (int64_t j = 0; j < T; ++j) o += std::exp(S[i * T + j] - m) / z * v[((b * T + j) * Hk + h / G) * d + c];
          out[((b * T + i) * Hq + h) * d + c] = o;
        }
      }
    }
  return out;
}
}  // namespace

TEST_CASE("dense: reference attention forward matches a naive score-matrix version, backward matches FD",
          "[cpu][ops]") {
  for (bool causal : {true, false}) {
    moda::AttentionShape s;
    s.batch = 2, s.seq = 7, s.heads_q = 6, s.heads_kv = 2, s.head_dim = 5, s.causal = causal;
    const size_t nq = s.batch * s.seq * s.heads_q * s.head_dim, nkv = s.batch * s.seq * s.heads_kv * s.head_dim;
    auto q = randn<double>(nq, 20), k = randn<double>(nkv, 21), v = randn<double>(nkv, 22), w = randn<double>(nq, 23);
    auto out = poisoned<double>(nq), lse = poisoned<double>(s.batch * s.heads_q * s.seq);
    moda::cpu::attention_reference_forward(s, q.data(), k.data(), v.data(), out.data(), lse.data());
    INFO("causal=" << causal);
    CHECK(rel_l2(out, attention_naive(s, q, k, v)) < 1e-13);
    for (double l : lse) CHECK(std::isfinite(l));

    // Loss = sum(out * w): dout = w.
    auto dq = poisoned<double>(nq), dk = poisoned<double>(nkv), dv = poisoned<double>(nkv);
    moda::cpu::attention_reference_backward(s, q.data(), k.data(), v.data(), w.data(), dq.data(), dk.data(), dv.data());
    auto loss = [&](const std::vector<double>& qq, const std::vector<double>& kk, const std::vector<double>& vv) {
      std::vector<double> o(nq);
      moda::cpu::attention_reference_forward(s, qq.data(), kk.data(), vv.data(), o.data(), (double*)nullptr);
      double l = 0;
      for (size_t i = 0; i < nq; ++i) l += o[i] * w[i];
      return l;
    };
    const double h = 1e-6;
    auto fd_of = [&](int which) {
      std::vector<double> x = which == 0 ? q : which == 1 ? k : v, g(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        auto xp = x, xm = x;
        xp[i] += h, xm[i] -= h;
        const double up = which == 0 ? loss(xp, k, v) : which == 1 ? loss(q, xp, v) : loss(q, k, xp);
        const double dn = which == 0 ? loss(xm, k, v) : which == 1 ? loss(q, xm, v) : loss(q, k, xm);
        g[i] = (up - dn) / (2 * h);
      }
      return g;
    };
    CHECK(rel_l2(dq, fd_of(0)) < 1e-7);
    CHECK(rel_l2(dk, fd_of(1)) < 1e-7);
    CHECK(rel_l2(dv, fd_of(2)) < 1e-7);
  }
}

TEST_CASE("dense: reference attention rejects heads_q not a multiple of heads_kv", "[cpu][ops]") {
  moda::AttentionShape s;
  s.seq = 3, s.heads_q = 5, s.heads_kv = 2, s.head_dim = 4;
  std::vector<float> x(512);
  CHECK_THROWS_WITH(moda::cpu::attention_reference_forward(s, x.data(), x.data(), x.data(), x.data(), x.data()),
                    Catch::Contains("heads_q=5"));
}

TEMPLATE_TEST_CASE("dense: AdamW step follows the PyTorch formula over several steps", "[cpu][ops]", float, double) {
  const int64_t n = 101;
  moda::AdamWParams hp;
  hp.lr = 1e-2, hp.beta1 = 0.9, hp.beta2 = 0.99, hp.eps = 1e-8, hp.weight_decay = 0.1;
  auto p = randn<TestType>(n, 30), m = std::vector<TestType>(n, 0), v = std::vector<TestType>(n, 0);
  std::vector<double> rp(p.begin(), p.end()), rm(n, 0.0), rv(n, 0.0);
  std::vector<moda::bf16> pb(n, moda::bf16{0xffff});
  for (int64_t step = 1; step <= 3; ++step) {
    auto g = randn<TestType>(n, 31 + step);
    const double gs = 0.5;
    hp.step = step;
    moda::cpu::adamw_step(hp, p.data(), g.data(), m.data(), v.data(), n, pb.data(), gs);
    for (int64_t i = 0; i < n; ++i) {
      const double gi = double(g[i]) * gs;
      rp[i] *= 1 - hp.lr * hp.weight_decay;
      rm[i] = hp.beta1 * rm[i] + (1 - hp.beta1) * gi;
      rv[i] = hp.beta2 * rv[i] + (1 - hp.beta2) * gi * gi;
      const double mhat = rm[i] / (1 - std::pow(hp.beta1, step)), vhat = rv[i] / (1 - std::pow(hp.beta2, step));
      rp[i] -= hp.lr * mhat / (std::sqrt(vhat) + hp.eps);
    }
  }
  const double tol = std::is_same_v<TestType, float> ? 1e-6 : 1e-12;
  CHECK(rel_l2(p, rp) < tol);
  CHECK(rel_l2(m, rm) < tol);
  CHECK(rel_l2(v, rv) < tol);
  for (int64_t i = 0; i < n; ++i) CHECK(pb[i].bits == moda::float_to_bf16(float(p[i])).bits);
  hp.step = 0;
  CHECK_THROWS_WITH(moda::cpu::adamw_step(hp, p.data(), p.data(), m.data(), v.data(), n), Catch::Contains("step"));
}

TEMPLATE_TEST_CASE("dense: global grad norm and clipping over several buffers", "[cpu][ops]", float, double) {
  auto a = randn<TestType>(37, 40), b = randn<TestType>(1001, 41), c = randn<TestType>(5, 42);
  double sum = 0;
  for (auto* buf : {&a, &b, &c})
    for (auto x : *buf) sum += double(x) * double(x);
  const TestType* cb[] = {a.data(), b.data(), c.data()};
  TestType* mb[] = {a.data(), b.data(), c.data()};
  const int64_t sizes[] = {37, 1001, 5};
  CHECK(moda::cpu::grad_norm<TestType>(cb, sizes, 3) == Approx(std::sqrt(sum)).epsilon(1e-12));
  // Not clipped when the norm is below max_norm.
  auto a0 = a;
  CHECK(moda::cpu::clip_grad_norm<TestType>(mb, sizes, 3, 1e6) == Approx(std::sqrt(sum)));
  CHECK(rel_l2(a, a0) == 0.0);
  // Clipped to max_norm.
  const double norm = moda::cpu::clip_grad_norm<TestType>(mb, sizes, 3, 2.0);
  CHECK(norm == Approx(std::sqrt(sum)).epsilon(1e-12));
  CHECK(moda::cpu::grad_norm<TestType>(cb, sizes, 3) == Approx(2.0).epsilon(1e-5));
}
