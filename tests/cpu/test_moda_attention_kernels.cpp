// MoDA attention CPU reference: central finite differences in float64, an independent naive
// causal GQA implementation at L = 0, accumulate mode, strided depth-stream views, and the CUDA
// test cases at small size (float path against the float64 path).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "kernels/cpu/moda_attention.h"
#include "tests/moda_attention_cases.h"

using namespace moda;
using moda::test::ModaCase;
using moda::test::ModaHost;
using moda::test::rel_l2;

namespace {

template <typename T>
using Run = moda::test::ModaReference<T>;

// Loss = sum(o * dout) over the output view, so dLoss/do = dout.
double loss(const ModaHost& h) {
  Run<double> r(h, false, false);
  const auto o = h.o_view(r.o), w = h.o_view(h.dout);
  double s = 0;
  for (size_t i = 0; i < o.size(); ++i) s += o[i] * w[i];
  return s;
}

// Central differences of the loss w.r.t. every element of a view of `buf` (a member of h).
std::vector<double> numeric_grad(ModaHost& h, std::vector<double>& buf, int64_t offset, ModaStrides st, int64_t heads,
                                 int64_t slots) {
  const double eps = 1e-6;
  std::vector<double> g;
  const auto& s = h.shape;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t)
      for (int64_t j = 0; j < slots; ++j)
        for (int64_t hh = 0; hh < heads; ++hh)
          for (int64_t c = 0; c < s.d; ++c) {
            double& x = buf[offset + b * st.batch + t * st.token + j * st.slot + hh * st.head + c];
            const double x0 = x;
            x = x0 + eps;
            const double up = loss(h);
            x = x0 - eps;
            const double down = loss(h);
            x = x0;
            g.push_back((up - down) / (2 * eps));
          }
  return g;
}

// Plain causal (or full) GQA attention written from the definition, as score / probability
// matrices; its backward uses rowsum(P * dP) where the reference uses rowsum(dout * o).
struct NaiveGqa {
  std::vector<double> o, lse, dq, dk, dv;  // o, dq [B,T,Hq,d]; dk, dv [B,T,Hk,d]; lse [B,Hq,T]

  NaiveGqa(const ModaHost& h) {
    const auto& s = h.shape;
    const int64_t B = s.B, T = s.T, Hq = s.Hq, Hk = s.Hk, d = s.d, G = Hq / Hk;
    const double scale = 1.0 / std::sqrt(double(d));
    const auto q = h.q_view(h.q), k = h.seq_view(h.kst), v = h.seq_view(h.vst), dout = h.o_view(h.dout);
    auto Q = [&](int64_t b, int64_t t, int64_t hh) { return &q[((b * T + t) * Hq + hh) * d]; };
    auto K = [&](const std::vector<double>& x, int64_t b, int64_t t, int64_t kh) {
      return &x[((b * T + t) * Hk + kh) * d];
    };
    o.assign(B * T * Hq * d, 0), dq = o, lse.assign(B * Hq * T, 0), dk.assign(B * T * Hk * d, 0), dv = dk;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t hh = 0; hh < Hq; ++hh) {
        const int64_t kh = hh / G;
        std::vector<double> P(T * T, 0.0), dP(T * T, 0.0);
        for (int64_t t = 0; t < T; ++t) {
          double m = -INFINITY;
          for (int64_t j = 0; j < T; ++j) {
            if (s.causal && j > t) continue;
            double sc = 0;
            for (int64_t c = 0; c < d; ++c) sc += Q(b, t, hh)[c] * K(k, b, j, kh)[c];
            P[t * T + j] = sc * scale;
            m = std::max(m, sc * scale);
          }
          double z = 0;
          for (int64_t j = 0; j < T; ++j)
            if (!(s.causal && j > t)) z += (P[t * T + j] = std::exp(P[t * T + j] - m));
          for (int64_t j = 0; j < T; ++j) P[t * T + j] /= z;
          lse[(b * Hq + hh) * T + t] = m + std::log(z);
          for (int64_t j = 0; j < T; ++j)
            for (int64_t c = 0; c < d; ++c) {
              o[((b * T + t) * Hq + hh) * d + c] += P[t * T + j] * K(v, b, j, kh)[c];
              dP[t * T + j] += dout[((b * T + t) * Hq + hh) * d + c] * K(v, b, j, kh)[c];
            }
        }
        for (int64_t t = 0; t < T; ++t) {
          double pdp = 0;
          for (int64_t j = 0; j < T; ++j) pdp += P[t * T + j] * dP[t * T + j];
          for (int64_t j = 0; j < T; ++j) {
            const double ds = P[t * T + j] * (dP[t * T + j] - pdp);
            for (int64_t c = 0; c < d; ++c) {
              dq[((b * T + t) * Hq + hh) * d + c] += scale * ds * K(k, b, j, kh)[c];
              dk[((b * T + j) * Hk + kh) * d + c] += scale * ds * Q(b, t, hh)[c];
              dv[((b * T + j) * Hk + kh) * d + c] += P[t * T + j] * dout[((b * T + t) * Hq + hh) * d + c];
            }
          }
        }
      }
  }
};

}  // namespace

TEST_CASE("moda attention cpu: gradients match central finite differences", "[cpu][moda]") {
  const std::vector<ModaCase> cases = {
      {2, 5, 4, 2, 3, 4, true}, {1, 4, 3, 1, 2, 3, false}, {1, 6, 2, 2, 0, 5, true}, {1, 1, 2, 1, 4, 4, true}};
  for (const auto& c : cases) {
    INFO("B=" << c.B << " T=" << c.T << " Hq=" << c.Hq << " Hk=" << c.Hk << " L=" << c.L << " d=" << c.d
              << " causal=" << c.causal);
    ModaHost h(c);
    h.fill(11, false, false);
    Run<double> r(h, true, false);
    const double tol = 1e-7;
    CHECK(rel_l2(h.q_view(r.dq), numeric_grad(h, h.q, 0, h.q_strides(), c.Hq, 1)) < tol);
    CHECK(rel_l2(h.seq_view(r.dkst), numeric_grad(h, h.kst, h.seq_offset(), h.seq_strides(), c.Hk, 1)) < tol);
    CHECK(rel_l2(h.seq_view(r.dvst), numeric_grad(h, h.vst, h.seq_offset(), h.seq_strides(), c.Hk, 1)) < tol);
    if (c.L > 0) {
      CHECK(rel_l2(h.depth_view(r.dkst), numeric_grad(h, h.kst, h.depth_offset(), h.depth_strides(), c.Hk, c.L)) < tol);
      CHECK(rel_l2(h.depth_view(r.dvst), numeric_grad(h, h.vst, h.depth_offset(), h.depth_strides(), c.Hk, c.L)) < tol);
    }
    CHECK(h.slot0_untouched(r.dkst));
    CHECK(h.slot0_untouched(r.dvst));
  }
}

TEST_CASE("moda attention cpu: L = 0 equals an independent naive GQA attention", "[cpu][moda]") {
  for (bool causal : {true, false}) {
    ModaHost h(ModaCase{2, 23, 6, 2, 0, 16, causal});
    h.fill(5, false, false);
    Run<double> r(h, true, false);
    NaiveGqa ref(h);
    INFO("causal=" << causal);
    CHECK(rel_l2(h.o_view(r.o), ref.o) < 1e-12);
    CHECK(rel_l2(r.lse, ref.lse) < 1e-12);
    CHECK(rel_l2(h.q_view(r.dq), ref.dq) < 1e-11);
    CHECK(rel_l2(h.seq_view(r.dkst), ref.dk) < 1e-11);
    CHECK(rel_l2(h.seq_view(r.dvst), ref.dv) < 1e-11);
  }
}

TEST_CASE("moda attention cpu: a token's depth entries act as extra keys of that token only", "[cpu][moda]") {
  // Token t with L depth entries equals plain attention of row t over [K[0..t] | Kd[t]]; checked
  // by moving token t's depth entries into the sequence of a one-row problem.
  ModaHost h(ModaCase{1, 6, 2, 1, 3, 8, true});
  h.fill(9, false, false);
  Run<double> r(h, false, false);
  const auto& s = h.shape;
  const int64_t t = 4, n = t + 1 + s.L;
  ModaHost flat(ModaCase{1, n, 2, 1, 0, 8, true});
  flat.fill(1, false, false);
  for (int64_t hh = 0; hh < 2; ++hh)
    for (int64_t c = 0; c < 8; ++c) {
      const double qv = h.q[t * h.q_strides().token + hh * h.q_strides().head + c];
      flat.q[(n - 1) * flat.q_strides().token + hh * flat.q_strides().head + c] = qv;
    }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 8; ++c) {
      const int64_t src = i <= t
                              ? h.seq_offset() + i * h.seq_strides().token
                              : h.depth_offset() + t * h.depth_strides().token + (i - t - 1) * h.depth_strides().slot;
      const int64_t dst = flat.seq_offset() + i * flat.seq_strides().token;
      flat.kst[dst + c] = h.kst[src + c];
      flat.vst[dst + c] = h.vst[src + c];
    }
  Run<double> rf(flat, false, false);
  for (int64_t hh = 0; hh < 2; ++hh)
    for (int64_t c = 0; c < 8; ++c)
      CHECK(std::abs(r.o[(t * 2 + hh) * 8 + c] - rf.o[((n - 1) * 2 + hh) * 8 + c]) < 1e-12);
}

TEST_CASE("moda attention cpu: accumulate mode adds into the gradient buffers", "[cpu][moda]") {
  ModaHost h(ModaCase{2, 9, 4, 2, 4, 8, true});
  h.fill(3, false, true);
  Run<double> acc(h, true, true);
  ModaHost fresh = h;
  fresh.fill(3, false, false);  // same inputs (same seed), NaN gradient buffers
  Run<double> over(fresh, true, false);
  auto sum = [](std::vector<double> a, const std::vector<double>& b) {
    for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
    return a;
  };
  CHECK(rel_l2(h.seq_view(acc.dkst), sum(h.seq_view(h.dkst), h.seq_view(over.dkst))) < 1e-14);
  CHECK(rel_l2(h.seq_view(acc.dvst), sum(h.seq_view(h.dvst), h.seq_view(over.dvst))) < 1e-14);
  CHECK(rel_l2(h.depth_view(acc.dkst), sum(h.depth_view(h.dkst), h.depth_view(over.dkst))) < 1e-14);
  CHECK(rel_l2(h.depth_view(acc.dvst), sum(h.depth_view(h.dvst), h.depth_view(over.dvst))) < 1e-14);
  CHECK(rel_l2(h.q_view(acc.dq), h.q_view(over.dq)) < 1e-14);  // dq is always overwritten
  CHECK(h.slot0_untouched(acc.dkst));
}

TEST_CASE("moda attention cpu: the CUDA test cases at small size, float path against float64", "[cpu][moda]") {
  uint32_t seed = 100;
  for (const auto& spec : moda::test::moda_case_list(true)) {
    const auto& c = spec.c;
    INFO("B=" << c.B << " T=" << c.T << " Hq=" << c.Hq << " Hk=" << c.Hk << " L=" << c.L << " d=" << c.d
              << " causal=" << c.causal << " accumulate=" << spec.accumulate);
    ModaHost h(c);
    h.fill(seed++, true, spec.accumulate);
    Run<double> ref(h, true, spec.accumulate);
    Run<float> got(h, true, spec.accumulate);
    const double tol = 1e-5;
    CHECK(rel_l2(h.o_view(got.o), h.o_view(ref.o)) < tol);
    CHECK(rel_l2(std::vector<double>(got.lse.begin(), got.lse.end()), ref.lse) < tol);
    CHECK(rel_l2(h.q_view(got.dq), h.q_view(ref.dq)) < tol);
    CHECK(rel_l2(h.seq_view(got.dkst), h.seq_view(ref.dkst)) < tol);
    CHECK(rel_l2(h.seq_view(got.dvst), h.seq_view(ref.dvst)) < tol);
    if (c.L > 0) {
      CHECK(rel_l2(h.depth_view(got.dkst), h.depth_view(ref.dkst)) < tol);
      CHECK(rel_l2(h.depth_view(got.dvst), h.depth_view(ref.dvst)) < tol);
    }
    CHECK(h.slot0_untouched(got.dkst));
    CHECK(h.slot0_untouched(got.dvst));
  }
}

TEST_CASE("moda attention cpu: invalid shapes are rejected with a message", "[cpu][moda]") {
  ModaHost h(ModaCase{1, 4, 3, 2, 1, 8, true});  // Hq not a multiple of Hk
  h.fill(1, false, false);
  REQUIRE_THROWS_WITH(Run<double>(h, false, false), Catch::Contains("multiple of Hk"));
}
