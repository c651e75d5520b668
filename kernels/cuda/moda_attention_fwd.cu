// MoDA attention forward: one fused FlashAttention-2 style kernel (docs/attention-kernels.md).
//
// A CTA owns Tc consecutive tokens of one (batch, KV head) and all G query heads of that KV head:
// its BM = Tc * G query rows are ordered token-major (row = tau * G + g), so every K/V tile and
// every depth row is loaded once for the whole group. Each warp owns 16 * MT rows and keeps its Q
// fragments, the fp32 output accumulator and the running (max, sum) of its rows in registers.
// The loop interleaves two kinds of work on one online-softmax state:
//   * sequence tiles of BN keys (CTA-wide, double-buffered cp.async; masks only on tiles that
//     touch the causal diagonal or the end of the sequence), S = Q K^T and O += P V on mma.sync;
//   * depth chunks: each warp streams the depth rows of its own tokens, LC slots at a time, into
//     a private double buffer and multiplies them with the 16-row tile that holds that token's
//     G rows (rows of other tokens masked). Loads of the next depth chunk overlap the current
//     sequence tile, so the memory-bound depth traffic hides behind tensor-core work.
// Depth merge (moda_attention_forward_depth_merge): o and lse already hold the attention over the
// sequence keys alone (cuDNN's, autograd/attention_l0.h); the kernel skips the sequence tiles and
// starts each row's online softmax from that partial result (running max = its lse, sum = 1,
// accumulator = its o), so the depth chunks extend it to the full MoDA softmax in place.
#include "core/cuda_check.h"
#include "kernels/cuda/moda_attention.h"
#include "kernels/cuda/moda_attention_depth_simt.cuh"
#include "kernels/cuda/moda_attention_mma.cuh"

namespace moda::cuda {
namespace moda_attn {
namespace {

using bf = __nv_bfloat16;

struct FwdParams {
  const bf *q, *k, *v, *kd, *vd;
  bf* o;
  float* lse;
  int64_t q_b, q_t, q_h, k_b, k_t, k_h, v_b, v_t, v_h;
  int64_t kd_b, kd_t, kd_s, kd_h, vd_b, vd_t, vd_s, vd_h;
  int64_t o_b, o_t, o_h;
  int T, Hq, G, L, Tc, nblocks;
  int Tk, q0;  // keys, and the position of query token 0 among them (cached decoding; else T, 0)
  bool causal;
  bool seq_given;  // o, lse hold the sequence keys' partial result: merge the depth keys into it
  float sl2;       // softmax scale * log2(e): scores are kept in base-2 units
};

template <int D, int NW, int MT, int BN, int LC>
struct FwdCfg {
  static constexpr int BM = NW * 16 * MT;  // query rows per CTA
  static constexpr int NT = NW * 32;
  static constexpr int NC = D / 8;  // 16-byte chunks per row
  static constexpr int Q_BYTES = BM * D * 2;
  static constexpr int KV_BYTES = BN * D * 2;
  static constexpr int DEP_BYTES = LC * D * 2;
  static constexpr int OFF_K = Q_BYTES;                 // K tiles, 2 stages
  static constexpr int OFF_V = OFF_K + 2 * KV_BYTES;    // V tiles, 2 stages
  static constexpr int OFF_DEP = OFF_V + 2 * KV_BYTES;  // [stage][warp][K | V] depth chunks
  static constexpr int SMEM_SEQ = OFF_DEP;
  static constexpr int SMEM_ALL = OFF_DEP + 2 * NW * 2 * DEP_BYTES;
};

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// One online-softmax step of a 16-row tile: s holds raw scores (masked entries -inf) of NTL
// 8-column tiles; on return it holds the probabilities exp2(s * sl2 - m). Rows that have seen no
// key yet keep m = -inf and get zero probabilities (no NaN).
template <int NTL, int NO>
__device__ __forceinline__ void online_update(float (&s)[NTL][4], float (&m)[2], float (&l)[2], float (&o)[NO][4],
                                              float sl2) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < NTL; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * h], s[nt][2 * h + 1]));
    mx = quad_max(mx);
    const float m_new = fmaxf(m[h], mx * sl2);
    const float m_use = m_new == -INFINITY ? 0.f : m_new;
    const float alpha = fast_exp2(m[h] - m_use);
    m[h] = m_new;
    float rs = 0.f;
#pragma unroll
    for (int nt = 0; nt < NTL; ++nt) {
      s[nt][2 * h] = fast_exp2(fmaf(s[nt][2 * h], sl2, -m_use));
      s[nt][2 * h + 1] = fast_exp2(fmaf(s[nt][2 * h + 1], sl2, -m_use));
      rs += s[nt][2 * h] + s[nt][2 * h + 1];
    }
    l[h] = l[h] * alpha + rs;
#pragma unroll
    for (int nt = 0; nt < NO; ++nt) o[nt][2 * h] *= alpha, o[nt][2 * h + 1] *= alpha;
  }
}

// O (16 x D) += P (16 x 16*KS, in s as C fragments) . V (rows [0, 16*KS) of the swizzled tile sv).
template <int D, int KS, int NTL>
__device__ __forceinline__ void pv_product(const float (&s)[NTL][4], uint32_t sv, int lane, float (&o)[D / 8][4]) {
  constexpr int NC = D / 8;
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                            pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                            pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t b[4];
      ldsm_x4_t(b, sv + swz<NC>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), 2 * dp + (lane >> 4)));
      mma16816(o[2 * dp], pa, b[0], b[1]);
      mma16816(o[2 * dp + 1], pa, b[2], b[3]);
    }
  }
}

// S (16 x 8*NTL) = Q (16 x D, A fragments) . K^T with K rows [0, 8*NTL) of the swizzled tile sk.
template <int D, int NTL>
__device__ __forceinline__ void qk_product(const uint32_t (&qa)[D / 16][4], uint32_t sk, int lane, float (&s)[NTL][4]) {
  constexpr int NC = D / 8;
#pragma unroll
  for (int nt = 0; nt < NTL; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
    for (int np = 0; np < NTL / 2; ++np) {
      uint32_t b[4];
      ldsm_x4(b, sk + swz<NC>(np * 16 + (lane & 7) + ((lane >> 4) << 3), 2 * kk + ((lane >> 3) & 1)));
      mma16816(s[2 * np], qa[kk], b[0], b[1]);
      mma16816(s[2 * np + 1], qa[kk], b[2], b[3]);
    }
  }
}

template <int D, int NW, int MT, int BN, int LC>
__global__ void __launch_bounds__(NW * 32) moda_fwd_kernel(const FwdParams p) {
  using C = FwdCfg<D, NW, MT, BN, LC>;
  constexpr int NC = C::NC;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int tb = p.causal ? p.nblocks - 1 - int(blockIdx.x) : int(blockIdx.x);  // heavy blocks first
  const int kh = blockIdx.y, b = blockIdx.z;
  const int G = p.G, T = p.T, L = p.L;
  const int t0 = tb * p.Tc, Tv = min(p.Tc, T - t0), rows_valid = Tv * G;

  // Work of this CTA: sequence tiles (last one first: it holds the diagonal) and, per warp, the
  // depth chunks of the tokens its rows belong to.
  const int kend = p.causal ? p.q0 + t0 + Tv : p.Tk;
  const int nseq = p.seq_given ? 0 : (kend + BN - 1) / BN;
  const int ncl = (L + LC - 1) / LC;
  auto warp_tokens = [&](int w, int& lo) {
    const int r0 = w * 16 * MT;
    lo = r0 / G;
    if (r0 >= rows_valid || L == 0) return 0;
    return (min(r0 + 16 * MT, rows_valid) - 1) / G - lo + 1;
  };
  int tok_lo;
  const int nd = warp_tokens(warp, tok_lo) * ncl;
  int nd_max = 0;
#pragma unroll
  for (int w = 0; w < NW; ++w) {
    int lo;
    nd_max = max(nd_max, warp_tokens(w, lo) * ncl);
  }
  const int n_iter = max(nseq, nd_max);

  const bf* kbase = p.k + b * p.k_b + kh * p.k_h;
  const bf* vbase = p.v + b * p.v_b + kh * p.v_h;

  // Q rows (tau, g) -> shared, zero for rows past the valid ones.
  {
    const bf* qbase = p.q + b * p.q_b + int64_t(t0) * p.q_t + int64_t(kh) * G * p.q_h;
    for (int i = tid; i < C::BM * NC; i += C::NT) {
      const int row = i / NC, c = i % NC;
      const bool valid = row < rows_valid;
      const int tau = row / G, g = row - tau * G;
      const bf* src = valid ? qbase + int64_t(tau) * p.q_t + int64_t(g) * p.q_h + c * 8 : p.q;
      cp_async16(sbase + swz<NC>(row, c), src, valid);
    }
    cp_async_commit();
  }

  auto issue = [&](int it) {
    const int st = it & 1;
    if (it < nseq) {
      const int n0 = (nseq - 1 - it) * BN;
      const uint32_t sk = sbase + C::OFF_K + st * C::KV_BYTES, sv = sbase + C::OFF_V + st * C::KV_BYTES;
      for (int i = tid; i < BN * NC; i += C::NT) {
        const int row = i / NC, c = i % NC, key = n0 + row;
        const bool valid = key < p.Tk;
        cp_async16(sk + swz<NC>(row, c), kbase + (valid ? int64_t(key) * p.k_t + c * 8 : 0), valid);
        cp_async16(sv + swz<NC>(row, c), vbase + (valid ? int64_t(key) * p.v_t + c * 8 : 0), valid);
      }
    }
    if (it < nd) {
      const int tau = tok_lo + it / ncl, j0 = (it % ncl) * LC;
      const bf* kdb = p.kd + b * p.kd_b + int64_t(t0 + tau) * p.kd_t + kh * p.kd_h;
      const bf* vdb = p.vd + b * p.vd_b + int64_t(t0 + tau) * p.vd_t + kh * p.vd_h;
      const uint32_t sk = sbase + C::OFF_DEP + (st * NW + warp) * 2 * C::DEP_BYTES, sv = sk + C::DEP_BYTES;
      for (int i = lane; i < LC * NC; i += 32) {
        const int row = i / NC, c = i % NC, j = j0 + row;
        const bool valid = j < L;
        cp_async16(sk + swz<NC>(row, c), kdb + (valid ? int64_t(j) * p.kd_s + c * 8 : 0), valid);
        cp_async16(sv + swz<NC>(row, c), vdb + (valid ? int64_t(j) * p.vd_s + c * 8 : 0), valid);
      }
    }
    cp_async_commit();
  };

  issue(0);
  cp_async_wait<1>();
  __syncthreads();
  uint32_t qa[MT][D / 16][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      ldsm_x4(qa[mt][kk],
              sbase + swz<NC>((warp * MT + mt) * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), 2 * kk + (lane >> 4)));

  int rtok[MT][2];  // token (relative to t0) of each of this thread's rows
  float m_r[MT][2], l_r[MT][2], o_acc[MT][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      rtok[mt][h] = ((warp * MT + mt) * 16 + (lane >> 2) + 8 * h) / G;
      m_r[mt][h] = -INFINITY;
      l_r[mt][h] = 0.f;
    }
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) o_acc[mt][nt][0] = o_acc[mt][nt][1] = o_acc[mt][nt][2] = o_acc[mt][nt][3] = 0.f;
  }
  if (p.seq_given) {
    // The state the sequence tiles would have left: max = lse (base 2), sum = 1 (held by one thread
    // of the quad: the epilogue sums the quad's partial sums), accumulator = o. Each thread reads
    // exactly the elements it writes in the epilogue.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = (warp * MT + mt) * 16 + (lane >> 2) + 8 * h;
        if (r >= rows_valid) continue;
        const int tau = rtok[mt][h], t = t0 + tau, hq = kh * G + (r - tau * G);
        m_r[mt][h] = p.lse[(int64_t(b) * p.Hq + hq) * T + t] * kLog2e;
        l_r[mt][h] = (lane & 3) == 0 ? 1.f : 0.f;
        const bf* orow = p.o + b * p.o_b + int64_t(t) * p.o_t + int64_t(hq) * p.o_h + 2 * (lane & 3);
#pragma unroll
        for (int nt = 0; nt < D / 8; ++nt) {
          const float2 x = unpack_bf16(*reinterpret_cast<const uint32_t*>(orow + nt * 8));
          o_acc[mt][nt][2 * h] = x.x, o_acc[mt][nt][2 * h + 1] = x.y;
        }
      }
    __syncthreads();  // every lse of this CTA is read before any is overwritten
  }

  for (int it = 0; it < n_iter; ++it) {
    cp_async_wait<0>();
    __syncthreads();  // stage it&1 is filled; everyone is done with the other stage
    if (it + 1 < n_iter) issue(it + 1);
    const int st = it & 1;

    if (it < nseq) {
      const int n0 = (nseq - 1 - it) * BN;
      float s[MT][BN / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) qk_product<D, BN / 8>(qa[mt], sbase + C::OFF_K + st * C::KV_BYTES, lane, s[mt]);
      if (n0 + BN > p.Tk || (p.causal && n0 + BN - 1 > p.q0 + t0)) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int key = n0 + nt * 8 + 2 * (lane & 3) + (e & 1);
              if (key >= p.Tk || (p.causal && key > p.q0 + t0 + rtok[mt][e >> 1])) s[mt][nt][e] = -INFINITY;
            }
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        online_update(s[mt], m_r[mt], l_r[mt], o_acc[mt], p.sl2);
        pv_product<D, BN / 16>(s[mt], sbase + C::OFF_V + st * C::KV_BYTES, lane, o_acc[mt]);
      }
    }

    if (it < nd) {
      const int tau = tok_lo + it / ncl, j0 = (it % ncl) * LC;
      const uint32_t sk = sbase + C::OFF_DEP + (st * NW + warp) * 2 * C::DEP_BYTES, sv = sk + C::DEP_BYTES;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int r0 = (warp * MT + mt) * 16;
        if (tau < r0 / G || tau > (r0 + 15) / G) continue;  // token has no row in this 16-row tile
        float s[LC / 8][4];
        qk_product<D, LC / 8>(qa[mt], sk, lane, s);
#pragma unroll
        for (int nt = 0; nt < LC / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int j = j0 + nt * 8 + 2 * (lane & 3) + (e & 1);
            if (j >= L || rtok[mt][e >> 1] != tau) s[nt][e] = -INFINITY;
          }
        online_update(s, m_r[mt], l_r[mt], o_acc[mt], p.sl2);
        pv_product<D, LC / 16>(s, sv, lane, o_acc[mt]);
      }
    }
  }

  // Epilogue: normalise, store O (bf16) and the log-sum-exp (natural log).
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float lsum = quad_sum(l_r[mt][h]);
      const int r = (warp * MT + mt) * 16 + (lane >> 2) + 8 * h;
      if (r < rows_valid) {
        const int tau = rtok[mt][h], g = r - tau * G, t = t0 + tau, hq = kh * G + g;
        const float inv = 1.f / lsum;
        bf* orow = p.o + b * p.o_b + int64_t(t) * p.o_t + int64_t(hq) * p.o_h + 2 * (lane & 3);
#pragma unroll
        for (int nt = 0; nt < D / 8; ++nt)
          *reinterpret_cast<uint32_t*>(orow + nt * 8) =
              pack_bf16(o_acc[mt][nt][2 * h] * inv, o_acc[mt][nt][2 * h + 1] * inv);
        if ((lane & 3) == 0) p.lse[(int64_t(b) * p.Hq + hq) * T + t] = (m_r[mt][h] + log2f(lsum)) * kLn2;
      }
    }
}

template <int D, int NW, int MT, int BN, int LC>
void launch_fwd(FwdParams p, int B, int Hk, cudaStream_t stream) {
  using C = FwdCfg<D, NW, MT, BN, LC>;
  static_assert(C::SMEM_ALL <= 227 * 1024, "shared memory per CTA");
  p.Tc = C::BM / p.G;
  p.nblocks = (p.T + p.Tc - 1) / p.Tc;
  const int smem = p.L > 0 ? C::SMEM_ALL : C::SMEM_SEQ;
  auto kernel = moda_fwd_kernel<D, NW, MT, BN, LC>;
  MODA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM_ALL),
                  "moda_attention_forward");
  kernel<<<dim3(p.nblocks, Hk, B), C::NT, smem, stream>>>(p);
  check_launch("moda_attention_forward");
}

// The depth merge on CUDA cores (moda_attention_depth_simt.cuh), one instantiation per group size.
template <int D>
void launch_simt_depth_merge(const simt::DepthParams& p, int G, cudaStream_t stream) {
  simt::with_group(G, [&](auto g) {
    simt::depth_merge_forward<D, decltype(g)::value><<<simt::depth_grid(p), simt::kWarpsPerBlock * 32, 0, stream>>>(p);
  });
}

// Checks the operands (k, v only when the sequence keys are read) and launches the kernel: the
// depth merge (sequence part given) of small head groups on CUDA cores, the rest on the MMA kernel.
void run_forward(const char* op, bool seq_given, const ModaAttentionShape& s, const bf16* q, ModaStrides qs,
                 const bf16* k, ModaStrides ks, const bf16* v, ModaStrides vs, const bf16* depth_k, ModaStrides dks,
                 const bf16* depth_v, ModaStrides dvs, bf16* o, ModaStrides os, float* lse, cudaStream_t stream) {
  check_shape(s, op);
  check_ptr(q, "q", op), check_ptr(o, "o", op), check_ptr(lse, "lse", op);
  check_strides(qs, false, "q", op), check_strides(os, false, "o", op);
  if (!seq_given) {
    check_ptr(k, "k", op), check_ptr(v, "v", op);
    check_strides(ks, false, "k", op), check_strides(vs, false, "v", op);
  }
  if (s.L > 0) {
    check_ptr(depth_k, "depth_k", op), check_ptr(depth_v, "depth_v", op);
    check_strides(dks, true, "depth_k", op), check_strides(dvs, true, "depth_v", op);
  }
  if (seq_given && simt::takes(s)) {
    const auto p = simt::depth_params(s, q, qs, depth_k, dks, depth_v, dvs, o, os, lse);
    if (s.d == 64)
      launch_simt_depth_merge<64>(p, int(s.group()), stream);
    else
      launch_simt_depth_merge<128>(p, int(s.group()), stream);
    return check_launch(op);
  }
  FwdParams p{};
  p.q = reinterpret_cast<const bf*>(q), p.k = reinterpret_cast<const bf*>(k), p.v = reinterpret_cast<const bf*>(v);
  p.kd = reinterpret_cast<const bf*>(depth_k), p.vd = reinterpret_cast<const bf*>(depth_v);
  p.o = reinterpret_cast<bf*>(o), p.lse = lse;
  p.q_b = qs.batch, p.q_t = qs.token, p.q_h = qs.head;
  p.k_b = ks.batch, p.k_t = ks.token, p.k_h = ks.head;
  p.v_b = vs.batch, p.v_t = vs.token, p.v_h = vs.head;
  p.kd_b = dks.batch, p.kd_t = dks.token, p.kd_s = dks.slot, p.kd_h = dks.head;
  p.vd_b = dvs.batch, p.vd_t = dvs.token, p.vd_s = dvs.slot, p.vd_h = dvs.head;
  p.o_b = os.batch, p.o_t = os.token, p.o_h = os.head;
  p.T = int(s.T), p.Hq = int(s.Hq), p.G = int(s.group()), p.L = int(s.L);
  p.Tk = int(s.keys()), p.q0 = int(s.q_offset);
  p.causal = s.causal, p.seq_given = seq_given;
  p.sl2 = float(s.softmax_scale()) * kLog2e;
  if (s.d == 64)
    launch_fwd<64, 4, 2, 64, 16>(p, int(s.B), int(s.Hk), stream);
  else
    launch_fwd<128, 8, 1, 64, 16>(p, int(s.B), int(s.Hk), stream);
}

}  // namespace
}  // namespace moda_attn

void moda_attention_forward(const ModaAttentionShape& s, const bf16* q, ModaStrides qs, const bf16* k, ModaStrides ks,
                            const bf16* v, ModaStrides vs, const bf16* depth_k, ModaStrides dks, const bf16* depth_v,
                            ModaStrides dvs, bf16* o, ModaStrides os, float* lse, cudaStream_t stream) {
  moda_attn::run_forward("moda_attention_forward (cuda)", false, s, q, qs, k, ks, v, vs, depth_k, dks, depth_v, dvs, o,
                         os, lse, stream);
}

void moda_attention_forward_depth_merge(const ModaAttentionShape& s, const bf16* q, ModaStrides qs, const bf16* depth_k,
                                        ModaStrides dks, const bf16* depth_v, ModaStrides dvs, bf16* o, ModaStrides os,
                                        float* lse, cudaStream_t stream) {
  const char* op = "moda_attention_forward_depth_merge (cuda)";
  MODA_CHECK(s.L > 0, op, ": needs depth keys (L > 0), got L = 0");
  moda_attn::run_forward(op, true, s, q, qs, nullptr, {}, nullptr, {}, depth_k, dks, depth_v, dvs, o, os, lse, stream);
}

}  // namespace moda::cuda
