#pragma once
// Test fixture shared by the CPU and CUDA tests of MoDA attention (tests/cpu/test_moda_attention_kernels.cpp,
// tests/gpu/test_moda_attention_kernels_cuda.cpp). It lays the operands out the way the model does:
//   K and V live in depth-stream buffers [B, T, S, Hk, d] with S = L + 2 slots; the depth view is
//   slots [1, L + 1) (so its base is offset and its token stride S*Hk*d exceeds L*Hk*d), the
//   sequence K, V are slot L + 1, slot 0 belongs to nobody (it must stay untouched).
//   q and dq have a padded head stride (d + 8); o and dout are contiguous.
// Gradients of K, V and the depth entries go into matching gradient-stream buffers, exactly as
// the model's backward does. Values are double holding bf16-representable numbers, so the CUDA
// (bf16) kernels and the float64 reference see identical inputs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/bf16.h"
#include "kernels/cpu/moda_attention.h"
#include "kernels/moda_attention_shape.h"
#include "tests/compare.h"

namespace moda::test {

struct ModaCase {
  int64_t B, T, Hq, Hk, L, d;
  bool causal;
};

inline double round_bf16(double x) { return double(bf16_to_float(float_to_bf16(float(x)))); }

struct ModaHost {
  ModaAttentionShape shape;
  int64_t S = 0, qpad = 8;
  std::vector<double> q, kst, vst, dout;       // inputs (kst / vst: K, V depth-stream buffers)
  std::vector<double> o, lse, dq, dkst, dvst;  // outputs (dkst / dvst: gradient-stream buffers)

  explicit ModaHost(const ModaCase& c) {
    shape.B = c.B, shape.T = c.T, shape.Hq = c.Hq, shape.Hk = c.Hk, shape.L = c.L, shape.d = c.d;
    shape.causal = c.causal;
    S = c.L + 2;
    q.assign(c.B * c.T * c.Hq * (c.d + qpad), 0.0);
    kst.assign(c.B * c.T * S * c.Hk * c.d, 0.0);
    vst = kst;
    dout.assign(c.B * c.T * c.Hq * c.d, 0.0);
    o = dout;
    lse.assign(c.B * c.Hq * c.T, 0.0);
    dq = q;
    dkst = kst;
    dvst = kst;
  }

  // Strides and element offsets of each operand inside its buffer.
  ModaStrides q_strides() const {
    return {shape.T * shape.Hq * (shape.d + qpad), shape.Hq * (shape.d + qpad), 0, shape.d + qpad};
  }
  ModaStrides o_strides() const { return moda_strides_bthd(shape.T, shape.Hq, shape.d); }
  ModaStrides seq_strides() const { return moda_strides_stream_slot(shape.T, S, shape.Hk, shape.d); }
  ModaStrides depth_strides() const { return moda_strides_depth(shape.T, S, shape.Hk, shape.d); }
  int64_t seq_offset() const { return (shape.L + 1) * shape.Hk * shape.d; }
  int64_t depth_offset() const { return shape.Hk * shape.d; }

  // Fills the inputs with fresh random values (bf16-representable when `bf16`), the outputs with
  // NaN, and the gradient-stream buffers with NaN (overwrite) or random values (accumulate).
  void fill(uint32_t seed, bool bf16, bool accumulate) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> nd(0.0, 1.0);
    auto rnd = [&] { return bf16 ? round_bf16(nd(rng)) : nd(rng); };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (auto& x : q) x = rnd();
    for (auto& x : kst) x = rnd();
    for (auto& x : vst) x = rnd();
    for (auto& x : dout) x = rnd();
    for (auto* buf : {&o, &lse, &dq}) std::fill(buf->begin(), buf->end(), nan);
    for (auto* buf : {&dkst, &dvst}) {
      for (auto& x : *buf) x = accumulate ? rnd() : nan;
      // slot 0 is no operand's: NaN there must survive (nothing may write outside the views).
      for (int64_t bt = 0; bt < shape.B * shape.T; ++bt)
        for (int64_t i = 0; i < shape.Hk * shape.d; ++i) (*buf)[bt * S * shape.Hk * shape.d + i] = nan;
    }
  }

  // Elements covered by a view, in a fixed order (b, t, [slot,] head, c).
  template <typename V>
  std::vector<double> gather(const V& buf, int64_t offset, ModaStrides st, int64_t heads, int64_t slots) const {
    std::vector<double> out;
    for (int64_t b = 0; b < shape.B; ++b)
      for (int64_t t = 0; t < shape.T; ++t)
        for (int64_t j = 0; j < slots; ++j)
          for (int64_t h = 0; h < heads; ++h)
            for (int64_t c = 0; c < shape.d; ++c)
              out.push_back(double(buf[offset + b * st.batch + t * st.token + j * st.slot + h * st.head + c]));
    return out;
  }
  // The five gradients and the output as flat vectors, for comparisons.
  template <typename V>
  std::vector<double> q_view(const V& buf) const {
    return gather(buf, 0, q_strides(), shape.Hq, 1);
  }
  template <typename V>
  std::vector<double> o_view(const V& buf) const {
    return gather(buf, 0, o_strides(), shape.Hq, 1);
  }
  template <typename V>
  std::vector<double> seq_view(const V& buf) const {
    return gather(buf, seq_offset(), seq_strides(), shape.Hk, 1);
  }
  template <typename V>
  std::vector<double> depth_view(const V& buf) const {
    return gather(buf, depth_offset(), depth_strides(), shape.Hk, shape.L);
  }
  // Slot 0 of a stream buffer (must still be all NaN after a backward pass).
  template <typename V>
  bool slot0_untouched(const V& buf) const {
    for (int64_t bt = 0; bt < shape.B * shape.T; ++bt)
      for (int64_t i = 0; i < shape.Hk * shape.d; ++i)
        if (!std::isnan(double(buf[bt * S * shape.Hk * shape.d + i]))) return false;
    return true;
  }
};

// The case list of the CUDA tests: every value of every axis appears at least once (G in {1,2,3,8}
// plus 16 and 32, L in {0,1,5,72} plus 256, T in {1,17,128,1000}, d in {64,128}, causal and not),
// the cross product thinned. `accumulate` toggles the gradient mode. `small` caps T and B for the
// CPU-only run of the same cases.
struct ModaCaseSpec {
  ModaCase c;
  bool accumulate;
};

inline std::vector<ModaCaseSpec> moda_case_list(bool small) {
  //                 B     T  Hq  Hk    L    d  causal   accumulate
  std::vector<ModaCaseSpec> list = {
      {{2, 17, 2, 2, 0, 64, true}, false},
      {{1, 128, 4, 2, 1, 64, true}, true},
      {{1, 1000, 3, 1, 5, 64, true}, false},
      {{2, 128, 8, 1, 72, 64, false}, true},
      {{1, 1000, 8, 1, 5, 128, true}, true},
      {{1, 1000, 4, 2, 72, 64, true}, false},
      {{1, 1, 2, 2, 5, 128, true}, false},
      {{1, 128, 6, 2, 0, 128, false}, true},
      {{3, 17, 8, 1, 1, 128, false}, false},
      {{1, 1000, 2, 1, 0, 128, true}, false},
      {{1, 17, 1, 1, 72, 64, false}, true},
      {{1, 1, 8, 1, 0, 64, false}, false},
      {{1, 40, 32, 1, 256, 64, true}, true},
      {{1, 300, 16, 1, 16, 128, true}, false},
      {{1, 77, 24, 8, 3, 64, true}, false},
      {{2, 200, 5, 5, 9, 64, false}, true},
      // depth backward groupings: 2 warps per token (16 < L <= 32), and G > 16 at small L
      {{1, 203, 6, 2, 24, 64, true}, true},
      {{1, 51, 32, 1, 7, 128, true}, false},
  };
  if (small)
    for (auto& s : list) s.c.T = std::min<int64_t>(s.c.T, 33), s.c.B = std::min<int64_t>(s.c.B, 2);
  return list;
}

// The CPU reference run on the host buffers in precision T: forward, and backward when `grads`
// (into copies of the gradient-stream buffers, added to them when `accumulate`).
template <typename T>
struct ModaReference {
  std::vector<T> q, kst, vst, dout, o, lse, dq, dkst, dvst;

  ModaReference(const ModaHost& h, bool grads, bool accumulate) {
    auto cast = [](const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); };
    q = cast(h.q), kst = cast(h.kst), vst = cast(h.vst), dout = cast(h.dout);
    o = cast(h.o), lse = cast(h.lse), dq = cast(h.dq), dkst = cast(h.dkst), dvst = cast(h.dvst);
    const auto& s = h.shape;
    const int64_t so = h.seq_offset(), dof = h.depth_offset();
    cpu::moda_attention_forward<T>(s, q.data(), h.q_strides(), kst.data() + so, h.seq_strides(), vst.data() + so,
                                   h.seq_strides(), kst.data() + dof, h.depth_strides(), vst.data() + dof,
                                   h.depth_strides(), o.data(), h.o_strides(), lse.data());
    if (!grads) return;
    cpu::moda_attention_backward<T>(s, q.data(), h.q_strides(), kst.data() + so, h.seq_strides(), vst.data() + so,
                                    h.seq_strides(), kst.data() + dof, h.depth_strides(), vst.data() + dof,
                                    h.depth_strides(), o.data(), h.o_strides(), lse.data(), dout.data(), h.o_strides(),
                                    dq.data(), h.q_strides(), dkst.data() + so, h.seq_strides(), dvst.data() + so,
                                    h.seq_strides(), dkst.data() + dof, h.depth_strides(), dvst.data() + dof,
                                    h.depth_strides(), accumulate, accumulate);
  }
};

}  // namespace moda::test
