#include "kernels/cpu/attention_reference.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace moda::cpu {

namespace {
// Index helpers for the [B, T, H, d] layout.
struct Layout {
  int64_t T, Hq, Hk, d;
  int64_t q(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * Hq + h) * d; }
  int64_t kv(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * Hk + h) * d; }
};

// Scaled scores of one query row against keys 0..len-1, turned into probabilities; returns lse.
template <typename T>
double row_probs(const Layout& L, const T* q, const T* k, int64_t b, int64_t t, int64_t h, int64_t len, double scale,
                 std::vector<double>& p) {
  const int64_t hk = h / (L.Hq / L.Hk);
  const T* qr = q + L.q(b, t, h);
  double m = -INFINITY;
  for (int64_t j = 0; j < len; ++j) {
    const T* kr = k + L.kv(b, j, hk);
    double dot = 0.0;
    for (int64_t c = 0; c < L.d; ++c) dot += double(qr[c]) * double(kr[c]);
    p[j] = dot * scale;
    m = std::max(m, p[j]);
  }
  double sum = 0.0;
  for (int64_t j = 0; j < len; ++j) sum += (p[j] = std::exp(p[j] - m));
  for (int64_t j = 0; j < len; ++j) p[j] /= sum;
  return m + std::log(sum);
}
}  // namespace

template <typename T>
void attention_reference_forward(const AttentionShape& s, const T* q, const T* k, const T* v, T* out, T* lse) {
  s.validate("attention_reference_forward");
  const Layout L{s.seq, s.heads_q, s.heads_kv, s.head_dim};
  const int64_t G = s.heads_q / s.heads_kv;
  const double scale = s.softmax_scale();
  std::vector<double> p(s.seq), acc(s.head_dim);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads_q; ++h)
      for (int64_t t = 0; t < s.seq; ++t) {
        const int64_t len = s.causal ? t + 1 : s.seq;
        const double l = row_probs(L, q, k, b, t, h, len, scale, p);
        if (lse) lse[(b * s.heads_q + h) * s.seq + t] = T(l);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < len; ++j) {
          const T* vr = v + L.kv(b, j, h / G);
          for (int64_t c = 0; c < s.head_dim; ++c) acc[c] += p[j] * double(vr[c]);
        }
        T* o = out + L.q(b, t, h);
        for (int64_t c = 0; c < s.head_dim; ++c) o[c] = T(acc[c]);
      }
}

template <typename T>
void attention_reference_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* dout, T* dq,
                                  T* dk, T* dv) {
  s.validate("attention_reference_backward");
  const Layout L{s.seq, s.heads_q, s.heads_kv, s.head_dim};
  const int64_t G = s.heads_q / s.heads_kv, d = s.head_dim;
  const double scale = s.softmax_scale();
  const int64_t nq = s.batch * s.seq * s.heads_q * d, nkv = s.batch * s.seq * s.heads_kv * d;
  std::vector<double> gq(nq, 0.0), gk(nkv, 0.0), gv(nkv, 0.0), p(s.seq), dp(s.seq);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads_q; ++h)
      for (int64_t t = 0; t < s.seq; ++t) {
        const int64_t len = s.causal ? t + 1 : s.seq, hk = h / G;
        row_probs(L, q, k, b, t, h, len, scale, p);
        const T* go = dout + L.q(b, t, h);
        // dP_j = dO . v_j;  D = sum_j P_j dP_j;  dS_j = P_j (dP_j - D) (gradient of the scaled score)
        double D = 0.0;
        for (int64_t j = 0; j < len; ++j) {
          const T* vr = v + L.kv(b, j, hk);
          double dot = 0.0;
          for (int64_t c = 0; c < d; ++c) dot += double(go[c]) * double(vr[c]);
          dp[j] = dot;
          D += p[j] * dot;
        }
        const T* qr = q + L.q(b, t, h);
        double* gqr = gq.data() + L.q(b, t, h);
        for (int64_t j = 0; j < len; ++j) {
          const double ds = p[j] * (dp[j] - D) * scale;
          const T* kr = k + L.kv(b, j, hk);
          double* gkr = gk.data() + L.kv(b, j, hk);
          double* gvr = gv.data() + L.kv(b, j, hk);
          for (int64_t c = 0; c < d; ++c) {
            gqr[c] += ds * double(kr[c]);
            gkr[c] += ds * double(qr[c]);
            gvr[c] += p[j] * double(go[c]);
          }
        }
      }
  for (int64_t i = 0; i < nq; ++i) dq[i] = T(gq[i]);
  for (int64_t i = 0; i < nkv; ++i) dk[i] = T(gk[i]), dv[i] = T(gv[i]);
}

template void attention_reference_forward<float>(const AttentionShape&, const float*, const float*, const float*,
                                                 float*, float*);
template void attention_reference_forward<double>(const AttentionShape&, const double*, const double*, const double*,
                                                  double*, double*);
template void attention_reference_backward<float>(const AttentionShape&, const float*, const float*, const float*,
                                                  const float*, float*, float*, float*);
template void attention_reference_backward<double>(const AttentionShape&, const double*, const double*, const double*,
                                                   const double*, double*, double*, double*);

}  // namespace moda::cpu
