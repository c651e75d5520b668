#include "kernels/cpu/moda_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

namespace moda::cpu {

namespace {

// Runs fn(i) for i in [0, n) on a few threads. Work items must not share outputs.
template <typename Fn>
void parallel_for(int64_t n, Fn fn) {
  const int64_t workers = std::min<int64_t>(n, std::max(1u, std::thread::hardware_concurrency()));
  if (workers <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  for (int64_t w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      for (int64_t i = next++; i < n; i = next++) fn(i);
    });
  for (auto& th : pool) th.join();
}

template <typename T>
double dot(const T* a, const T* b, int64_t d) {
  double s = 0;
  for (int64_t c = 0; c < d; ++c) s += double(a[c]) * double(b[c]);
  return s;
}

// Pointer arithmetic for the strided operands of one (batch, KV head) pair.
template <typename T>
struct Operands {
  const ModaAttentionShape& s;
  const T *q, *k, *v, *kd, *vd;
  ModaStrides qs, ks, vs, dks, dvs;

  const T* qrow(int64_t b, int64_t t, int64_t h) const { return q + b * qs.batch + t * qs.token + h * qs.head; }
  const T* krow(int64_t b, int64_t i, int64_t kh) const { return k + b * ks.batch + i * ks.token + kh * ks.head; }
  const T* vrow(int64_t b, int64_t i, int64_t kh) const { return v + b * vs.batch + i * vs.token + kh * vs.head; }
  const T* kdrow(int64_t b, int64_t t, int64_t j, int64_t kh) const {
    return kd + b * dks.batch + t * dks.token + j * dks.slot + kh * dks.head;
  }
  const T* vdrow(int64_t b, int64_t t, int64_t j, int64_t kh) const {
    return vd + b * dvs.batch + t * dvs.token + j * dvs.slot + kh * dvs.head;
  }
  int64_t visible(int64_t t) const { return s.causal ? s.q_offset + t + 1 : s.keys(); }

  // Scaled scores of row (b, t, h): sequence keys first, then the L depth keys of token t.
  void scores(int64_t b, int64_t t, int64_t h, std::vector<double>& sc) const {
    const int64_t kh = h / s.group(), n = visible(t), d = s.d;
    const double scale = s.softmax_scale();
    const T* qr = qrow(b, t, h);
    sc.resize(n + s.L);
    for (int64_t i = 0; i < n; ++i) sc[i] = scale * dot(qr, krow(b, i, kh), d);
    for (int64_t j = 0; j < s.L; ++j) sc[n + j] = scale * dot(qr, kdrow(b, t, j, kh), d);
  }
};

void check_args(const ModaAttentionShape& s, const void* q, const void* k, const void* v, const void* kd,
                const void* vd, const char* op) {
  s.validate(op);
  MODA_CHECK(q && k && v, op, ": q, k and v must not be null");
  MODA_CHECK(s.L == 0 || (kd && vd), op, ": depth_k and depth_v must not be null when L=", s.L);
}

}  // namespace

template <typename T>
void moda_attention_forward(const ModaAttentionShape& s, const T* q, ModaStrides qs, const T* k, ModaStrides ks,
                            const T* v, ModaStrides vs, const T* depth_k, ModaStrides dks, const T* depth_v,
                            ModaStrides dvs, T* o, ModaStrides os, T* lse) {
  check_args(s, q, k, v, depth_k, depth_v, "moda_attention_forward (cpu)");
  MODA_CHECK(o && lse, "moda_attention_forward (cpu): o and lse must not be null");
  const Operands<T> ops{s, q, k, v, depth_k, depth_v, qs, ks, vs, dks, dvs};
  const int64_t d = s.d, G = s.group();
  parallel_for(s.B * s.Hq, [&](int64_t bh) {
    const int64_t b = bh / s.Hq, h = bh % s.Hq, kh = h / G;
    std::vector<double> sc, acc(d);
    for (int64_t t = 0; t < s.T; ++t) {
      ops.scores(b, t, h, sc);
      const int64_t n = ops.visible(t);
      const double m = *std::max_element(sc.begin(), sc.end());
      double sum = 0;
      for (auto& x : sc) sum += (x = std::exp(x - m));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t i = 0; i < n + s.L; ++i) {
        const T* vr = i < n ? ops.vrow(b, i, kh) : ops.vdrow(b, t, i - n, kh);
        for (int64_t c = 0; c < d; ++c) acc[c] += sc[i] * double(vr[c]);
      }
      T* orow = o + b * os.batch + t * os.token + h * os.head;
      for (int64_t c = 0; c < d; ++c) orow[c] = T(acc[c] / sum);
      lse[(b * s.Hq + h) * s.T + t] = T(m + std::log(sum));
    }
  });
}

template <typename T>
void moda_attention_backward(const ModaAttentionShape& s, const T* q, ModaStrides qs, const T* k, ModaStrides ks,
                             const T* v, ModaStrides vs, const T* depth_k, ModaStrides dks, const T* depth_v,
                             ModaStrides dvs, const T* o, ModaStrides os, const T* lse, const T* dout, ModaStrides dos,
                             T* dq, ModaStrides dqs, T* dk, ModaStrides dks_out, T* dv, ModaStrides dvs_out,
                             T* d_depth_k, ModaStrides ddks, T* d_depth_v, ModaStrides ddvs, bool accumulate_kv,
                             bool accumulate_depth) {
  const char* op = "moda_attention_backward (cpu)";
  check_args(s, q, k, v, depth_k, depth_v, op);
  MODA_CHECK(o && lse && dout && dq && dk && dv, op, ": o, lse, dout, dq, dk and dv must not be null");
  MODA_CHECK(s.aligned(), op, ": the backward needs queries and keys at the same positions (q_offset 0, Tk = T)");
  MODA_CHECK(s.L == 0 || (d_depth_k && d_depth_v), op, ": depth gradients must not be null when L=", s.L);
  const Operands<T> ops{s, q, k, v, depth_k, depth_v, qs, ks, vs, dks, dvs};
  const int64_t d = s.d, G = s.group(), T_ = s.T, L = s.L;
  const double scale = s.softmax_scale();
  // One work item per (batch, KV head): it owns dk, dv and the depth gradients of that head, so
  // items never write the same element.
  parallel_for(s.B * s.Hk, [&](int64_t bk) {
    const int64_t b = bk / s.Hk, kh = bk % s.Hk;
    std::vector<double> gk(T_ * d, 0.0), gv(T_ * d, 0.0), gkd(T_ * L * d, 0.0), gvd(T_ * L * d, 0.0);
    std::vector<double> sc, gq(d);
    for (int64_t h = kh * G; h < (kh + 1) * G; ++h) {
      for (int64_t t = 0; t < T_; ++t) {
        ops.scores(b, t, h, sc);
        const int64_t n = ops.visible(t);
        const double row_lse = double(lse[(b * s.Hq + h) * T_ + t]);
        const T* qr = ops.qrow(b, t, h);
        const T* dor = dout + b * dos.batch + t * dos.token + h * dos.head;
        const double D = dot(dor, o + b * os.batch + t * os.token + h * os.head, d);
        std::fill(gq.begin(), gq.end(), 0.0);
        for (int64_t i = 0; i < n + L; ++i) {
          const bool seq = i < n;
          const T* kr = seq ? ops.krow(b, i, kh) : ops.kdrow(b, t, i - n, kh);
          const T* vr = seq ? ops.vrow(b, i, kh) : ops.vdrow(b, t, i - n, kh);
          const double p = std::exp(sc[i] - row_lse);
          const double ds = p * (dot(dor, vr, d) - D);
          double* gkr = seq ? &gk[i * d] : &gkd[(t * L + (i - n)) * d];
          double* gvr = seq ? &gv[i * d] : &gvd[(t * L + (i - n)) * d];
          for (int64_t c = 0; c < d; ++c) {
            gq[c] += scale * ds * double(kr[c]);
            gkr[c] += scale * ds * double(qr[c]);
            gvr[c] += p * double(dor[c]);
          }
        }
        T* dqr = dq + b * dqs.batch + t * dqs.token + h * dqs.head;
        for (int64_t c = 0; c < d; ++c) dqr[c] = T(gq[c]);
      }
    }
    auto store = [d](T* dst, const double* src, bool accumulate) {
      for (int64_t c = 0; c < d; ++c) dst[c] = accumulate ? T(double(dst[c]) + src[c]) : T(src[c]);
    };
    for (int64_t t = 0; t < T_; ++t) {
      store(dk + b * dks_out.batch + t * dks_out.token + kh * dks_out.head, &gk[t * d], accumulate_kv);
      store(dv + b * dvs_out.batch + t * dvs_out.token + kh * dvs_out.head, &gv[t * d], accumulate_kv);
      for (int64_t j = 0; j < L; ++j) {
        store(d_depth_k + b * ddks.batch + t * ddks.token + j * ddks.slot + kh * ddks.head, &gkd[(t * L + j) * d],
              accumulate_depth);
        store(d_depth_v + b * ddvs.batch + t * ddvs.token + j * ddvs.slot + kh * ddvs.head, &gvd[(t * L + j) * d],
              accumulate_depth);
      }
    }
  });
}

#define MODA_INSTANTIATE(T)                                                                                            \
  template void moda_attention_forward<T>(const ModaAttentionShape&, const T*, ModaStrides, const T*, ModaStrides,     \
                                          const T*, ModaStrides, const T*, ModaStrides, const T*, ModaStrides, T*,     \
                                          ModaStrides, T*);                                                            \
  template void moda_attention_backward<T>(                                                                            \
      const ModaAttentionShape&, const T*, ModaStrides, const T*, ModaStrides, const T*, ModaStrides, const T*,        \
      ModaStrides, const T*, ModaStrides, const T*, ModaStrides, const T*, const T*, ModaStrides, T*, ModaStrides, T*, \
      ModaStrides, T*, ModaStrides, T*, ModaStrides, T*, ModaStrides, bool, bool);
MODA_INSTANTIATE(float)
MODA_INSTANTIATE(double)
#undef MODA_INSTANTIATE

}  // namespace moda::cpu
