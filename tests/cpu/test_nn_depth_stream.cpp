// The depth stream's writes and strided reads against an explicit concatenation, and its gradient
// wiring (later readers accumulate into the gradient buffer before earlier writers hand it out)
// against finite differences.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "autograd/function.h"
#include "autograd/gradcheck.h"
#include "nn/depth_stream.h"
#include "tests/compare.h"

using namespace moda;
using moda::test::rel_l2;
using namespace moda::nn;

namespace {

// loss = sum(w * x) with fixed weights: a scalar to differentiate through.
Tensor weighted_sum(const Tensor& x, const Tensor& w) {
  auto xv = x.to_double_vector(), wv = w.to_double_vector();
  double s = 0;
  for (size_t i = 0; i < xv.size(); ++i) s += xv[i] * wv[i];
  Tensor out = Tensor::from_vector(std::vector<double>{s}, {1}, x.dtype());
  return record_op("weighted_sum", {x}, {out}, [w, x](const std::vector<Tensor>& g) {
    auto wv = w.to_double_vector();
    double gs = g[0].item();
    for (auto& e : wv) e *= gs;
    return std::vector<Tensor>{Tensor::from_vector(wv, x.shape(), x.dtype())};
  })[0];
}

// Naive MoDA attention on explicit tensors: q [B,T,Hq,d], k,v [B,T,Hk,d], depth given as a list of
// [B,T,Hk,d] tensors (the explicit concatenation of the depth entries of each token).
std::vector<double> naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<Tensor>& dk,
                                    const std::vector<Tensor>& dv, bool causal) {
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), d = q.size(3), Hk = k.size(2), G = Hq / Hk;
  auto Q = q.to_double_vector(), K = k.to_double_vector(), V = v.to_double_vector();
  std::vector<std::vector<double>> DK, DV;
  for (auto& t : dk) DK.push_back(t.to_double_vector());
  for (auto& t : dv) DV.push_back(t.to_double_vector());
  auto kv_at = [&](int64_t b, int64_t t, int64_t h) { return ((b * T + t) * Hk + h) * d; };
  std::vector<double> out(Q.size(), 0.0);
  const double scale = 1.0 / std::sqrt(double(d));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < Hq; ++h) {
        const double* qr = &Q[((b * T + t) * Hq + h) * d];
        std::vector<double> scores;
        std::vector<const double*> vals;
        for (int64_t j = 0; j < (causal ? t + 1 : T); ++j) {
          double s = 0;
          for (int64_t c = 0; c < d; ++c) s += qr[c] * K[kv_at(b, j, h / G) + c];
          scores.push_back(s * scale);
          vals.push_back(&V[kv_at(b, j, h / G)]);
        }
        for (size_t e = 0; e < DK.size(); ++e) {
          double s = 0;
          for (int64_t c = 0; c < d; ++c) s += qr[c] * DK[e][kv_at(b, t, h / G) + c];
          scores.push_back(s * scale);
          vals.push_back(&DV[e][kv_at(b, t, h / G)]);
        }
        double m = *std::max_element(scores.begin(), scores.end()), z = 0;
        for (auto& s : scores) z += (s = std::exp(s - m));
        double* o = &out[((b * T + t) * Hq + h) * d];
        for (size_t j = 0; j < scores.size(); ++j)
          for (int64_t c = 0; c < d; ++c) o[c] += scores[j] / z * vals[j][c];
      }
  return out;
}

}  // namespace

TEST_CASE("nn depth stream: writes land in their slots and strided reads equal explicit concatenation", "[cpu][nn]") {
  const int64_t B = 2, T = 5, Hq = 4, Hk = 2, d = 6, S = 4;
  for (DType dt : {DType::F32, DType::F64}) {
    StreamStep step(B, T, S, Hk, d, dt, Device::cpu());
    std::vector<Tensor> ks, vs;
    for (int64_t s = 0; s < S; ++s) {
      ks.push_back(Tensor::randn({B, T, Hk, d}, 100 + s, dt));
      vs.push_back(Tensor::randn({B, T, Hk, d}, 200 + s, dt));
      step.write(s, ks[s], vs[s]);
    }
    // Writes: slot s of the buffer holds exactly ks[s], vs[s].
    for (int64_t s = 0; s < S; ++s) {
      REQUIRE(step.stream->keys().select(2, s).to_double_vector() == ks[s].to_double_vector());
      REQUIRE(step.stream->values().select(2, s).to_double_vector() == vs[s].to_double_vector());
    }
    Tensor q = Tensor::randn({B, T, Hq, d}, 7, dt);
    for (int64_t own : {0, 2, 3})
      for (int64_t nd = 0; nd <= own; ++nd)
        for (bool causal : {true, false}) {
          Tensor o = step.attend(q, own, nd, causal);
          std::vector<Tensor> dk(ks.begin(), ks.begin() + nd), dv(vs.begin(), vs.begin() + nd);
          auto ref = naive_attention(q, ks[own], vs[own], dk, dv, causal);
          CHECK(rel_l2(o.to_double_vector(), ref) < (dt == DType::F32 ? 1e-5 : 1e-12));
        }
  }
}

TEST_CASE("nn depth stream: gradients through shared slots match finite differences", "[cpu][nn]") {
  // Three "layers" on one stream (the depth_kv_ffn pattern): layer 0 writes slots 0 (attn) and
  // 1 (ffn) and reads slot 0; layer 1 writes slot 2 and reads 2 with depth [0, 2); layer 2 writes
  // slot 3 and reads it with depth [0, 3). Slot 0's gradient comes from three readers.
  const int64_t B = 2, T = 3, Hq = 2, Hk = 1, d = 4, S = 4;
  std::vector<Tensor> inputs;
  for (int i = 0; i < 4; ++i) {
    inputs.push_back(Tensor::randn({B, T, Hk, d}, 10 + i, DType::F64).set_requires_grad(true));  // k_i
    inputs.push_back(Tensor::randn({B, T, Hk, d}, 20 + i, DType::F64).set_requires_grad(true));  // v_i
  }
  for (int i = 0; i < 3; ++i)
    inputs.push_back(Tensor::randn({B, T, Hq, d}, 30 + i, DType::F64).set_requires_grad(true));
  Tensor w = Tensor::randn({B, T, Hq, d}, 99, DType::F64);
  auto f = [&](const std::vector<Tensor>& x) {
    StreamStep step(B, T, S, Hk, d, DType::F64, Device::cpu());
    step.write(0, x[0], x[1]);
    step.write(1, x[2], x[3]);
    Tensor o0 = step.attend(x[8], 0, 0, true);
    step.write(2, x[4], x[5]);
    Tensor o1 = step.attend(x[9], 2, 2, true);
    step.write(3, x[6], x[7]);
    Tensor o2 = step.attend(x[10], 3, 3, true);
    // Sum the three outputs by a differentiable weighted sum of each.
    Tensor l0 = weighted_sum(o0, w), l1 = weighted_sum(o1, w), l2 = weighted_sum(o2, w);
    double total = l0.item() + l1.item() + l2.item();
    Tensor out = Tensor::from_vector(std::vector<double>{total}, {1}, DType::F64);
    return record_op("sum3", {l0, l1, l2}, {out}, [](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{g[0], g[0], g[0]};
    })[0];
  };
  auto r = gradcheck(f, inputs, 1e-6, 1e-7, 1e-5);
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("nn depth stream: misuse is reported", "[cpu][nn]") {
  StreamStep step(1, 3, 2, 1, 4, DType::F64, Device::cpu());
  Tensor k = Tensor::randn({1, 3, 1, 4}, 1, DType::F64);
  Tensor q = Tensor::randn({1, 3, 2, 4}, 2, DType::F64);
  CHECK_THROWS_WITH(step.attend(q, 1, 0, true), Catch::Contains("read before it was written"));
  step.write(0, k, k);
  CHECK_THROWS_WITH(step.write(0, k, k), Catch::Contains("written twice"));
  CHECK_THROWS_WITH(step.write(1, Tensor::randn({1, 3, 2, 4}, 3, DType::F64), k), Catch::Contains("[B, T, Hk, d]"));
  CHECK_THROWS_WITH(step.attend(q, 0, 1, true), Catch::Contains("own slot"));
}
