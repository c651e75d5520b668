// MoDA attention backward (docs/attention-kernels.md). Four kernels on one stream:
//   1. prep:  D = rowsum(dout * o) per query row (fp32); zeroes the fp32 dq accumulator when L == 0.
//   2. depth: per (batch, KV head, token): the G query rows of token t against its L depth rows.
//      P and dS come from the saved log-sum-exp, so this part needs nothing from the sequence
//      keys. The CTA that owns token t produces d_depth_k / d_depth_v of t completely (summed
//      over the G heads, no atomics) and writes the depth part of dq as the initial value of
//      the dq accumulator. Memory-bound; tensor cores with the slots as the M dimension.
//   3. kv: FlashAttention-2 backward over sequence keys: a CTA owns 128 keys of one KV head and
//      walks the query tiles (G heads x tokens, causal ones only) accumulating dK, dV in
//      registers (summed over the G heads); dq += dS K goes to the accumulator with atomics.
//   4. convert: dq (bf16, strided) from the fp32 accumulator.
// Depth only (moda_attention_backward_depth): the sequence keys' part came from elsewhere (cuDNN,
// run on the full o and lse, which gives exactly that part: autograd/attention_l0.h). Then 3 is
// skipped and 4 adds the depth part of dq to the dq already there.
// Notation inside a CTA: S^T = K Q^T (keys as MMA rows, query rows as columns), so that P^T and
// dS^T are already A fragments for dV = P^T dO and dK = dS^T Q.
#include <type_traits>
#include <utility>

#include "core/cuda_check.h"
#include "kernels/cuda/moda_attention.h"
#include "kernels/cuda/moda_attention_depth_simt.cuh"
#include "kernels/cuda/moda_attention_mma.cuh"

namespace moda::cuda {
namespace moda_attn {
namespace {

using bf = __nv_bfloat16;

struct BwdParams {
  const bf *q, *k, *v, *kd, *vd, *o, *dout;
  const float* lse;
  bf *dq, *dk, *dv, *dkd, *dvd;
  float* dq_acc;  // [B, T, Hq, D] fp32
  float* Dvec;    // [B, Hq, T] fp32
  float* Lse2;    // [B, Hq, T] fp32: lse * log2(e), the base-2 row offset of P
  int64_t q_b, q_t, q_h, k_b, k_t, k_h, v_b, v_t, v_h, o_b, o_t, o_h, do_b, do_t, do_h;
  int64_t kd_b, kd_t, kd_s, kd_h, vd_b, vd_t, vd_s, vd_h;
  int64_t dq_b, dq_t, dq_h, dk_b, dk_t, dk_h, dv_b, dv_t, dv_h;
  int64_t dkd_b, dkd_t, dkd_s, dkd_h, dvd_b, dvd_t, dvd_s, dvd_h;
  int B, T, Hq, G, L;
  bool causal, acc_kv, acc_depth;
  bool dq_add;  // convert adds into dq (depth only) instead of overwriting it
  float scale, sl2;
};

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Stores the pair (x, y) as bf16 at dst (4-byte aligned), adding the old value when accumulating.
__device__ __forceinline__ void store_pair(bf* dst, float x, float y, bool accumulate) {
  uint32_t* p = reinterpret_cast<uint32_t*>(dst);
  if (accumulate) {
    const float2 old = unpack_bf16(*p);
    x += old.x, y += old.y;
  }
  *p = pack_bf16(x, y);
}

// C (16 x 8*NTL) = A (16 rows at arow0 of swizzled tile sa) . B^T (rows [0, 8*NTL) of tile sb):
// both operands row-major with D columns; used for S^T = K Q^T and dP^T = V dO^T.
template <int D, int NTL>
__device__ __forceinline__ void rows_by_rows(uint32_t sa, int arow0, uint32_t sb, int lane, float (&c)[NTL][4]) {
  constexpr int NC = D / 8;
#pragma unroll
  for (int nt = 0; nt < NTL; ++nt) c[nt][0] = c[nt][1] = c[nt][2] = c[nt][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[4];
    ldsm_x4(a, sa + swz<NC>(arow0 + (lane & 7) + (((lane >> 3) & 1) << 3), 2 * kk + (lane >> 4)));
#pragma unroll
    for (int np = 0; np < NTL / 2; ++np) {
      uint32_t b[4];
      ldsm_x4(b, sb + swz<NC>(np * 16 + (lane & 7) + ((lane >> 4) << 3), 2 * kk + ((lane >> 3) & 1)));
      mma16816(c[2 * np], a, b[0], b[1]);
      mma16816(c[2 * np + 1], a, b[2], b[3]);
    }
  }
}

// acc (16 x D) = X (16 x 16*KS, C fragments in x) . Y (rows [0, 16*KS) of swizzled tile sy, D columns).
template <int D, int KS, int NTL>
__device__ __forceinline__ void frag_by_rows(const float (&x)[NTL][4], uint32_t sy, int lane, float (&acc)[D / 8][4]) {
  constexpr int NC = D / 8;
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    const uint32_t a[4] = {pack_bf16(x[2 * kk][0], x[2 * kk][1]), pack_bf16(x[2 * kk][2], x[2 * kk][3]),
                           pack_bf16(x[2 * kk + 1][0], x[2 * kk + 1][1]),
                           pack_bf16(x[2 * kk + 1][2], x[2 * kk + 1][3])};
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t b[4];
      ldsm_x4_t(b, sy + swz<NC>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), 2 * dp + (lane >> 4)));
      mma16816(acc[2 * dp], a, b[0], b[1]);
      mma16816(acc[2 * dp + 1], a, b[2], b[3]);
    }
  }
}

// acc (16 x 8*NTW) += dS (rows [16*rb, +16) of the query axis) . K, where dS^T is stored in the
// swizzled tile sds (rows = keys, QC chunks of query columns) and K in sk (rows = keys, D columns).
// Columns of the result: n-tiles [nt0, nt0 + NTW) of D.
template <int D, int QC, int KEYS, int NTW>
__device__ __forceinline__ void ds_by_keys(uint32_t sds, int rb, uint32_t sk, int nt0, int lane, float (&acc)[NTW][4]) {
  constexpr int NC = D / 8;
#pragma unroll
  for (int kk = 0; kk < KEYS / 16; ++kk) {
    uint32_t a[4];
    ldsm_x4_t(a, sds + swz<QC>(kk * 16 + (lane & 7) + ((lane >> 4) << 3), rb * 2 + ((lane >> 3) & 1)));
#pragma unroll
    for (int np = 0; np < NTW / 2; ++np) {
      uint32_t b[4];
      ldsm_x4_t(b, sk + swz<NC>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), nt0 + 2 * np + (lane >> 4)));
      mma16816(acc[2 * np], a, b[0], b[1]);
      mma16816(acc[2 * np + 1], a, b[2], b[3]);
    }
  }
}

// ------------------------------------------------------------------------------------------
// 1. prep: one warp per query row (b, t, hq).
template <int D>
__global__ void __launch_bounds__(256) moda_bwd_prep_kernel(const BwdParams p, bool zero_dq) {
  const int64_t row = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= int64_t(p.B) * p.T * p.Hq) return;
  const int hq = int(row % p.Hq), t = int((row / p.Hq) % p.T), b = int(row / (int64_t(p.Hq) * p.T));
  constexpr int E = D / 32;  // elements per lane
  const bf* orow = p.o + b * p.o_b + int64_t(t) * p.o_t + int64_t(hq) * p.o_h + lane * E;
  const bf* drow = p.dout + b * p.do_b + int64_t(t) * p.do_t + int64_t(hq) * p.do_h + lane * E;
  float acc = 0.f;
#pragma unroll
  for (int e = 0; e < E; e += 2) {
    const float2 a = unpack_bf16(*reinterpret_cast<const uint32_t*>(orow + e));
    const float2 c = unpack_bf16(*reinterpret_cast<const uint32_t*>(drow + e));
    acc += a.x * c.x + a.y * c.y;
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) {
    const int64_t idx = (int64_t(b) * p.Hq + hq) * p.T + t;
    p.Dvec[idx] = acc;
    p.Lse2[idx] = p.lse[idx] * kLog2e;
  }
  if (zero_dq) {
    float* dst = p.dq_acc + row * D + lane * E;
#pragma unroll
    for (int e = 0; e < E; ++e) dst[e] = 0.f;
  }
}

// ------------------------------------------------------------------------------------------
// 2. depth: CTA = 4 warps over `tpb` tokens of one (b, kh). An iteration takes TPI tokens at once
// (TPI = 4, 2 or 1, as many as fit: L <= 16 * 4 / TPI slots each and TPI * G <= GP query rows):
//   * Kd, Vd tile of 64 rows = TPI tokens x SC = 64 / TPI slots (chunks of SC slots when L > SC);
//     warp w owns rows [16 w, +16), i.e. slots of token w / WPT;
//   * one GP-row tile of the TPI tokens' query rows, packed token-major (row = tau * G + g), so a
//     small G does not pad every token to 16 rows: less shared memory, fewer registers for dq,
//     hence 5 CTAs per SM (the kernel is latency-bound at small L, see docs/attention-kernels.md);
//   * P is masked to pairs (slot, query row) of the same token, so dV = P^T dO, dK = dS^T Q and
//     dq = dS Kd over the whole tiles need no further masking.
template <int D, int MG, int TPI>
struct DepthCfg {
  static constexpr int NW = 4, NT = 128, WPT = NW / TPI, SC = 16 * WPT, GP = 16 * MG, NC = D / 8, QC = GP / 8;
  static constexpr int ROWS = NW * 16;
  static constexpr int ROWS_BYTES = ROWS * D * 2;  // one Kd or Vd tile
  static constexpr int QROWS_BYTES = GP * D * 2;
  static constexpr int OFF_KD = 0, OFF_VD = ROWS_BYTES, OFF_Q = 2 * ROWS_BYTES, OFF_DO = OFF_Q + QROWS_BYTES;
  static constexpr int OFF_LSE = OFF_DO + QROWS_BYTES, OFF_D = OFF_LSE + GP * 4;
  static constexpr int STAGE = OFF_D + GP * 4;
  static constexpr int OFF_DS = 2 * STAGE;  // dS^T [ROWS x GP] bf16
  static constexpr int SMEM = OFF_DS + ROWS * GP * 2;
  // CTAs per SM the register budget must allow: 5 where the packed tile makes that fit in shared
  // memory (d = 64, several tokens per iteration); one token per iteration (L > 32) keeps the
  // uncapped registers (130, 3 CTAs/SM) it had before the packing.
  static constexpr int MIN_CTAS = D == 64 && TPI > 1 ? 5 : 2;
};

template <int D, int MG, int TPI>
__global__ void __launch_bounds__(128, DepthCfg<D, MG, TPI>::MIN_CTAS)
    moda_bwd_depth_kernel(const BwdParams p, int tpb) {
  using C = DepthCfg<D, MG, TPI>;
  constexpr int NC = C::NC, GP = C::GP, SC = C::SC, WPT = C::WPT;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int grp = warp / WPT, wig = warp % WPT;
  const int kh = blockIdx.y, b = blockIdx.z, G = p.G, L = p.L, T = p.T;
  const int tstart = blockIdx.x * tpb, tend = min(tstart + tpb, T);
  const int nch = (L + SC - 1) / SC, n_iter = ((tend - tstart + TPI - 1) / TPI) * nch;

  auto issue = [&](int it) {
    const int t0 = tstart + (it / nch) * TPI, c = it % nch;
    const uint32_t s = sbase + (it & 1) * C::STAGE;
    for (int i = tid; i < C::ROWS * NC; i += C::NT) {
      const int row = i / NC, cc = i % NC, t = t0 + row / SC, j = c * SC + row % SC;
      const bool valid = j < L && t < tend;
      const int64_t kofs = b * p.kd_b + int64_t(t) * p.kd_t + kh * p.kd_h + int64_t(j) * p.kd_s + cc * 8;
      const int64_t vofs = b * p.vd_b + int64_t(t) * p.vd_t + kh * p.vd_h + int64_t(j) * p.vd_s + cc * 8;
      cp_async16(s + C::OFF_KD + swz<NC>(row, cc), p.kd + (valid ? kofs : 0), valid);
      cp_async16(s + C::OFF_VD + swz<NC>(row, cc), p.vd + (valid ? vofs : 0), valid);
    }
    for (int i = tid; i < GP * NC; i += C::NT) {
      const int row = i / NC, cc = i % NC, tau = row / G, g = row % G, t = t0 + tau;
      const bool valid = tau < TPI && t < tend;
      const int64_t qofs = b * p.q_b + int64_t(t) * p.q_t + int64_t(kh * G + g) * p.q_h + cc * 8;
      const int64_t dofs = b * p.do_b + int64_t(t) * p.do_t + int64_t(kh * G + g) * p.do_h + cc * 8;
      cp_async16(s + C::OFF_Q + swz<NC>(row, cc), p.q + (valid ? qofs : 0), valid);
      cp_async16(s + C::OFF_DO + swz<NC>(row, cc), p.dout + (valid ? dofs : 0), valid);
    }
    for (int row = tid; row < GP; row += C::NT) {
      const int tau = row / G, g = row % G, t = t0 + tau;
      const bool valid = tau < TPI && t < tend;
      const int64_t idx = valid ? (int64_t(b) * p.Hq + kh * G + g) * T + t : 0;
      cp_async4(s + C::OFF_LSE + 4 * row, p.lse + idx, valid);
      cp_async4(s + C::OFF_D + 4 * row, p.Dvec + idx, valid);
    }
    cp_async_commit();
  };

  // dq of the tile's query rows: rows [16 * rb, +16), n-tiles [ng * NTW, +NTW).
  constexpr int WPR = C::NW / MG, NTW = (D / 8) / WPR;
  const int rb = warp % MG, ng = warp / MG;
  float dq[NTW][4];
#pragma unroll
  for (int nt = 0; nt < NTW; ++nt) dq[nt][0] = dq[nt][1] = dq[nt][2] = dq[nt][3] = 0.f;

  issue(0);
  for (int it = 0; it < n_iter; ++it) {
    cp_async_wait<0>();
    __syncthreads();
    if (it + 1 < n_iter) issue(it + 1);
    const int t0 = tstart + (it / nch) * TPI, c = it % nch, t = t0 + grp;
    const bool token = t < tend;
    const uint32_t s = sbase + (it & 1) * C::STAGE;
    const float* slse = reinterpret_cast<const float*>(smem + (it & 1) * C::STAGE + C::OFF_LSE);
    const float* sD = reinterpret_cast<const float*>(smem + (it & 1) * C::STAGE + C::OFF_D);

    // S^T, dP^T for this warp's 16 slots against the tile's query rows (own token's rows only).
    float sp[GP / 8][4], dp[GP / 8][4];
    rows_by_rows<D, GP / 8>(s + C::OFF_KD, warp * 16, s + C::OFF_Q, lane, sp);
    rows_by_rows<D, GP / 8>(s + C::OFF_VD, warp * 16, s + C::OFF_DO, lane, dp);
#pragma unroll
    for (int nt = 0; nt < GP / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = nt * 8 + 2 * (lane & 3) + (e & 1);
        const int j = c * SC + wig * 16 + (lane >> 2) + 8 * (e >> 1);
        const bool ok = token && j < L && col / G == grp;
        const float pr = ok ? fast_exp2(fmaf(sp[nt][e], p.sl2, -slse[col] * kLog2e)) : 0.f;
        sp[nt][e] = pr;
        dp[nt][e] = pr * (dp[nt][e] - sD[col]);
      }

    // d_depth_v = P^T dO and d_depth_k = scale * dS^T Q for the 16 slots, summed over the heads.
    if (token) {
      float acc[D / 8][4];
      bf* dvb = p.dvd + b * p.dvd_b + int64_t(t) * p.dvd_t + kh * p.dvd_h + 2 * (lane & 3);
      bf* dkb = p.dkd + b * p.dkd_b + int64_t(t) * p.dkd_t + kh * p.dkd_h + 2 * (lane & 3);
      frag_by_rows<D, MG>(sp, s + C::OFF_DO, lane, acc);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int j = c * SC + wig * 16 + (lane >> 2) + 8 * h;
        if (j < L)
#pragma unroll
          for (int nt = 0; nt < D / 8; ++nt)
            store_pair(dvb + int64_t(j) * p.dvd_s + nt * 8, acc[nt][2 * h], acc[nt][2 * h + 1], p.acc_depth);
      }
      frag_by_rows<D, MG>(dp, s + C::OFF_Q, lane, acc);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int j = c * SC + wig * 16 + (lane >> 2) + 8 * h;
        if (j < L)
#pragma unroll
          for (int nt = 0; nt < D / 8; ++nt)
            store_pair(dkb + int64_t(j) * p.dkd_s + nt * 8, p.scale * acc[nt][2 * h], p.scale * acc[nt][2 * h + 1],
                       p.acc_depth);
      }
    }
    // dS^T -> shared for dq = dS Kd.
#pragma unroll
    for (int nt = 0; nt < GP / 8; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = warp * 16 + (lane >> 2) + 8 * h;
        *reinterpret_cast<uint32_t*>(smem + C::OFF_DS + swz<C::QC>(row, nt) + 4 * (lane & 3)) =
            pack_bf16(dp[nt][2 * h], dp[nt][2 * h + 1]);
      }
    __syncthreads();
    ds_by_keys<D, C::QC, C::ROWS, NTW>(sbase + C::OFF_DS, rb, s + C::OFF_KD, ng * NTW, lane, dq);

    if (c == nch - 1) {  // tokens done: their depth part of dq initialises the accumulator
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int col = rb * 16 + (lane >> 2) + 8 * h, tau = col / G, g = col % G, tt = t0 + tau;
        if (tau < TPI && tt < tend) {
          float* dst = p.dq_acc + ((int64_t(b) * T + tt) * p.Hq + kh * G + g) * D + 2 * (lane & 3);
#pragma unroll
          for (int nt = 0; nt < NTW; ++nt)
            *reinterpret_cast<float2*>(dst + (ng * NTW + nt) * 8) =
                make_float2(p.scale * dq[nt][2 * h], p.scale * dq[nt][2 * h + 1]);
        }
      }
#pragma unroll
      for (int nt = 0; nt < NTW; ++nt) dq[nt][0] = dq[nt][1] = dq[nt][2] = dq[nt][3] = 0.f;
    }
  }
}

template <int D, int MG, int TPI>
void launch_depth(const BwdParams& p, int Hk, cudaStream_t stream, const char* op) {
  using C = DepthCfg<D, MG, TPI>;
  const int tpb = 8 * TPI;  // 8 iterations per CTA when the slots fit one chunk
  const dim3 grid((p.T + tpb - 1) / tpb, Hk, p.B);
  set_smem(moda_bwd_depth_kernel<D, MG, TPI>, C::SMEM, op);
  moda_bwd_depth_kernel<D, MG, TPI><<<grid, C::NT, C::SMEM, stream>>>(p, tpb);
}

// Tokens per iteration: as many as fit both the slots (16 * 4 / TPI >= L) and the query tile
// (TPI * G <= 16 * MG); one token (in chunks of 64 slots) otherwise.
template <int D, int MG>
void launch_depth_for(const BwdParams& p, int Hk, cudaStream_t stream, const char* op) {
  if constexpr (MG == 1) {  // G > 16 (MG = 2) never fits two tokens in 32 rows
    if (p.L <= 16 && 4 * p.G <= 16) return launch_depth<D, MG, 4>(p, Hk, stream, op);
    if (p.L <= 32 && 2 * p.G <= 16) return launch_depth<D, MG, 2>(p, Hk, stream, op);
  }
  launch_depth<D, MG, 1>(p, Hk, stream, op);
}

// ------------------------------------------------------------------------------------------
template <int D, int BMQ, int NW_>
struct KvCfg {
  static constexpr int NW = NW_, NT = NW * 32, BNK = NW * 16, NC = D / 8, QC = BMQ / 8;
  static constexpr int TILE = BNK * D * 2, QTILE = BMQ * D * 2;
  static constexpr int OFF_K = 0, OFF_V = TILE, OFF_ROW = 2 * TILE;  // ROW: (tau << 16 | g) per tile row
  static constexpr int OFF_STAGE = OFF_ROW + BMQ * 4;
  static constexpr int S_Q = 0, S_DO = QTILE, S_LSE = 2 * QTILE, S_D = S_LSE + BMQ * 4, STAGE = S_D + BMQ * 4;
  static constexpr int OFF_DS = OFF_STAGE + 2 * STAGE;  // dS^T [BNK x BMQ] bf16
  static constexpr int SMEM = OFF_DS + BNK * BMQ * 2;
};

// 3. kv: CTA = NW warps, BNK = 16 * NW sequence keys of one (b, kh), each warp 16 keys; the CTA
// walks the query tiles of BMQ rows (tokens x G heads), causal ones only, from the last one down
// to the diagonal (CTAs of one KV head that run together share the query tile in L2). Per tile
// and warp: S^T = K Q^T and dP^T = V dO^T in one loop (independent MMAs interleaved); P^T and
// dS^T (scale folded in) packed to bf16 A fragments at once, in one straight-line body per mask
// mode; dV += P^T dO and dK += dS^T Q interleaved; dS^T to shared memory, then dq = dS K added
// to the fp32 accumulator with 16-byte atomics. P's base-2 offset lse * log2(e) comes from prep.
template <int D, int BMQ, int NW, int MINB>
__global__ void __launch_bounds__(NW * 32, MINB) moda_bwd_kv_kernel(const BwdParams p) {
  using C = KvCfg<D, BMQ, NW>;
  constexpr int NC = C::NC, BNK = C::BNK, KS = BMQ / 16;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int kh = blockIdx.y, b = blockIdx.z, G = p.G, T = p.T;
  const int n0 = blockIdx.x * BNK;
  const int tcq = BMQ / G, nq = (T + tcq - 1) / tcq;
  const int qt0 = p.causal ? n0 / tcq : 0, n_iter = nq - qt0;
  int* srow = reinterpret_cast<int*>(smem + C::OFF_ROW);
  for (int r = tid; r < BMQ; r += C::NT) srow[r] = ((r / G) << 16) | (r % G);
  __syncthreads();

  {
    const bf* kb = p.k + b * p.k_b + kh * p.k_h;
    const bf* vb = p.v + b * p.v_b + kh * p.v_h;
    for (int i = tid; i < BNK * NC; i += C::NT) {
      const int row = i / NC, cc = i % NC, key = n0 + row;
      const bool valid = key < T;
      cp_async16(sbase + C::OFF_K + swz<NC>(row, cc), kb + (valid ? int64_t(key) * p.k_t + cc * 8 : 0), valid);
      cp_async16(sbase + C::OFF_V + swz<NC>(row, cc), vb + (valid ? int64_t(key) * p.v_t + cc * 8 : 0), valid);
    }
  }
  auto issue = [&](int it) {
    const int t0q = (nq - 1 - it) * tcq, rows_valid = min(tcq, T - t0q) * G;
    const uint32_t s = sbase + C::OFF_STAGE + (it & 1) * C::STAGE;
    const bf* qb = p.q + b * p.q_b + int64_t(t0q) * p.q_t + int64_t(kh) * G * p.q_h;
    const bf* dob = p.dout + b * p.do_b + int64_t(t0q) * p.do_t + int64_t(kh) * G * p.do_h;
    for (int i = tid; i < BMQ * NC; i += C::NT) {
      const int row = i / NC, cc = i % NC, tg = srow[row], tau = tg >> 16, g = tg & 0xffff;
      const bool valid = row < rows_valid;
      cp_async16(s + C::S_Q + swz<NC>(row, cc), qb + (valid ? int64_t(tau) * p.q_t + int64_t(g) * p.q_h + cc * 8 : 0),
                 valid);
      cp_async16(s + C::S_DO + swz<NC>(row, cc),
                 dob + (valid ? int64_t(tau) * p.do_t + int64_t(g) * p.do_h + cc * 8 : 0), valid);
    }
    for (int row = tid; row < BMQ; row += C::NT) {
      const int tg = srow[row], tau = tg >> 16, g = tg & 0xffff;
      const bool valid = row < rows_valid;
      const int64_t idx = valid ? (int64_t(b) * p.Hq + kh * G + g) * T + t0q + tau : 0;
      cp_async4(s + C::S_LSE + 4 * row, p.Lse2 + idx, valid);
      cp_async4(s + C::S_D + 4 * row, p.Dvec + idx, valid);
    }
    cp_async_commit();
  };

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[nt][e] = dv[nt][e] = 0.f;

  constexpr int NRB = BMQ / 16, WPR = NW >= NRB ? NW / NRB : 1, RBPW = NW >= NRB ? 1 : NRB / NW;
  constexpr int NTW = (D / 8) / WPR;
  const int key_row0 = n0 + warp * 16 + (lane >> 2);
  issue(0);
  for (int it = 0; it < n_iter; ++it) {
    cp_async_wait<0>();
    __syncthreads();
    if (it + 1 < n_iter) issue(it + 1);
    const int t0q = (nq - 1 - it) * tcq, rows_valid = min(tcq, T - t0q) * G;
    const uint32_t s = sbase + C::OFF_STAGE + (it & 1) * C::STAGE;
    const float* slse = reinterpret_cast<const float*>(smem + C::OFF_STAGE + (it & 1) * C::STAGE + C::S_LSE);
    const float* sD = reinterpret_cast<const float*>(smem + C::OFF_STAGE + (it & 1) * C::STAGE + C::S_D);

    // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys, interleaved.
    float sp[BMQ / 8][4], dp[BMQ / 8][4];
#pragma unroll
    for (int nt = 0; nt < BMQ / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) sp[nt][e] = dp[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ak[4], av[4];
      const uint32_t arow = swz<NC>(warp * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), 2 * kk + (lane >> 4));
      ldsm_x4(ak, sbase + C::OFF_K + arow);
      ldsm_x4(av, sbase + C::OFF_V + arow);
#pragma unroll
      for (int np = 0; np < BMQ / 16; ++np) {
        uint32_t bq[4], bo[4];
        const uint32_t brow = swz<NC>(np * 16 + (lane & 7) + ((lane >> 4) << 3), 2 * kk + ((lane >> 3) & 1));
        ldsm_x4(bq, s + C::S_Q + brow);
        ldsm_x4(bo, s + C::S_DO + brow);
        mma16816(sp[2 * np], ak, bq[0], bq[1]);
        mma16816(dp[2 * np], av, bo[0], bo[1]);
        mma16816(sp[2 * np + 1], ak, bq[2], bq[3]);
        mma16816(dp[2 * np + 1], av, bo[2], bo[3]);
      }
    }

    // P^T, dS^T as packed A fragments; dS^T also to shared memory. One straight-line body per
    // mask mode (tiles away from the diagonal and the sequence end need no mask).
    uint32_t pa[KS][4], da[KS][4];
    auto elementwise = [&](auto mask_tag) {
      constexpr bool MASK = decltype(mask_tag)::value;
#pragma unroll
      for (int kk = 0; kk < KS; ++kk)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int nt = 2 * kk + (r >> 1), h = r & 1, col = nt * 8 + 2 * (lane & 3);
          const float2 l2 = *reinterpret_cast<const float2*>(slse + col);
          const float2 dd = *reinterpret_cast<const float2*>(sD + col);
          float p0 = fast_exp2(fmaf(sp[nt][2 * h], p.sl2, -l2.x));
          float p1 = fast_exp2(fmaf(sp[nt][2 * h + 1], p.sl2, -l2.y));
          if constexpr (MASK) {
            const int key = key_row0 + 8 * h;
            const bool kbad = key >= T;
            if (kbad || col >= rows_valid || (p.causal && key > t0q + (srow[col] >> 16))) p0 = 0.f;
            if (kbad || col + 1 >= rows_valid || (p.causal && key > t0q + (srow[col + 1] >> 16))) p1 = 0.f;
          }
          pa[kk][r] = pack_bf16(p0, p1);
          da[kk][r] = pack_bf16(p.scale * p0 * (dp[nt][2 * h] - dd.x), p.scale * p1 * (dp[nt][2 * h + 1] - dd.y));
          *reinterpret_cast<uint32_t*>(smem + C::OFF_DS + swz<C::QC>(warp * 16 + (lane >> 2) + 8 * h, nt) +
                                       4 * (lane & 3)) = da[kk][r];
        }
    };
    if (n0 + BNK > T || rows_valid < BMQ || (p.causal && t0q < n0 + BNK - 1))
      elementwise(std::true_type{});
    else
      elementwise(std::false_type{});

      // dV += P^T dO and dK += dS^T Q, interleaved.
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)
#pragma unroll
      for (int d2 = 0; d2 < D / 16; ++d2) {
        uint32_t bo[4], bq[4];
        const uint32_t row = swz<NC>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), 2 * d2 + (lane >> 4));
        ldsm_x4_t(bo, s + C::S_DO + row);
        ldsm_x4_t(bq, s + C::S_Q + row);
        mma16816(dv[2 * d2], pa[kk], bo[0], bo[1]);
        mma16816(dk[2 * d2], da[kk], bq[0], bq[1]);
        mma16816(dv[2 * d2 + 1], pa[kk], bo[2], bo[3]);
        mma16816(dk[2 * d2 + 1], da[kk], bq[2], bq[3]);
      }
    __syncthreads();

#pragma unroll
    for (int i = 0; i < RBPW; ++i) {
      const int rb = NW >= NRB ? warp % NRB : warp + i * NW, ng = NW >= NRB ? warp / NRB : 0;
      float acc[NTW][4];
#pragma unroll
      for (int nt = 0; nt < NTW; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
      ds_by_keys<D, C::QC, BNK, NTW>(sbase + C::OFF_DS, rb, sbase + C::OFF_K, ng * NTW, lane, acc);
      const bool odd = lane & 1;
#pragma unroll
      for (int nt = 0; nt < NTW; ++nt) {
        const float s0 = odd ? acc[nt][0] : acc[nt][2], s1 = odd ? acc[nt][1] : acc[nt][3];
        const float r0 = __shfl_xor_sync(0xffffffffu, s0, 1), r1 = __shfl_xor_sync(0xffffffffu, s1, 1);
        if (odd)
          acc[nt][0] = r0, acc[nt][1] = r1;
        else
          acc[nt][2] = r0, acc[nt][3] = r1;
      }
      const int row = rb * 16 + (lane >> 2) + (odd ? 8 : 0);
      if (row < rows_valid) {
        const int tg = srow[row], tau = tg >> 16, g = tg & 0xffff;
        float* dst = p.dq_acc + ((int64_t(b) * T + t0q + tau) * p.Hq + kh * G + g) * D + 2 * (lane & 2);
#pragma unroll
        for (int nt = 0; nt < NTW; ++nt)
          atomicAdd(reinterpret_cast<float4*>(dst + (ng * NTW + nt) * 8),
                    make_float4(acc[nt][0], acc[nt][1], acc[nt][2], acc[nt][3]));
      }
    }
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int key = key_row0 + 8 * h;
    if (key >= T) continue;
    bf* dkr = p.dk + b * p.dk_b + int64_t(key) * p.dk_t + kh * p.dk_h + 2 * (lane & 3);
    bf* dvr = p.dv + b * p.dv_b + int64_t(key) * p.dv_t + kh * p.dv_h + 2 * (lane & 3);
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) {
      store_pair(dkr + nt * 8, dk[nt][2 * h], dk[nt][2 * h + 1], p.acc_kv);  // scale is in dS
      store_pair(dvr + nt * 8, dv[nt][2 * h], dv[nt][2 * h + 1], p.acc_kv);
    }
  }
}

// ------------------------------------------------------------------------------------------
// 4. convert: dq (bf16, strided) from the fp32 accumulator, 8 elements per thread.
template <int D>
__global__ void __launch_bounds__(256) moda_bwd_convert_kernel(const BwdParams p) {
  const int64_t idx = int64_t(blockIdx.x) * 256 + threadIdx.x;
  if (idx >= int64_t(p.B) * p.T * p.Hq * (D / 8)) return;
  const int64_t row = idx / (D / 8);
  const int c8 = int(idx % (D / 8));
  const int hq = int(row % p.Hq), t = int((row / p.Hq) % p.T), b = int(row / (int64_t(p.Hq) * p.T));
  const float4 x = *reinterpret_cast<const float4*>(p.dq_acc + row * D + c8 * 8);
  const float4 y = *reinterpret_cast<const float4*>(p.dq_acc + row * D + c8 * 8 + 4);
  uint4* dst = reinterpret_cast<uint4*>(p.dq + b * p.dq_b + int64_t(t) * p.dq_t + int64_t(hq) * p.dq_h + c8 * 8);
  float f[8] = {x.x, x.y, x.z, x.w, y.x, y.y, y.z, y.w};
  if (p.dq_add) {
    const uint4 old = *dst;
    const uint32_t w[4] = {old.x, old.y, old.z, old.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 o2 = unpack_bf16(w[i]);
      f[2 * i] += o2.x, f[2 * i + 1] += o2.y;
    }
  }
  *dst = {pack_bf16(f[0], f[1]), pack_bf16(f[2], f[3]), pack_bf16(f[4], f[5]), pack_bf16(f[6], f[7])};
}

template <typename K>
void set_smem(K kernel, int bytes, const char* op) {
  MODA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), op);
}

// Tile shapes of the kv kernel (measured on H100 against other shapes, docs/attention-kernels.md):
// d = 64: 8 warps x 16 keys, query tiles of 128 rows; d = 128: 8 warps, query tiles of 32 rows
// (the dK, dV accumulators take twice the registers).
template <int D>
void launch_kv(const BwdParams& p, int Hk, cudaStream_t stream) {
  constexpr int BMQ = D == 64 ? 128 : 32, NW = 8;
  using C = KvCfg<D, BMQ, NW>;
  auto kernel = moda_bwd_kv_kernel<D, BMQ, NW, 1>;
  set_smem(kernel, C::SMEM, "moda_attention_backward");
  kernel<<<dim3((p.T + C::BNK - 1) / C::BNK, Hk, p.B), C::NT, C::SMEM, stream>>>(p);
  check_launch("moda_attention_backward");
}

template <int D>
void launch_bwd(const BwdParams& p, int Hk, cudaStream_t stream) {
  const char* op = "moda_attention_backward";
  const int64_t rows = int64_t(p.B) * p.T * p.Hq;
  moda_bwd_prep_kernel<D><<<unsigned((rows + 7) / 8), 256, 0, stream>>>(p, p.L == 0);
  check_launch(op);
  if (p.L > 0) {
    if (p.G <= 16)
      launch_depth_for<D, 1>(p, Hk, stream, op);
    else
      launch_depth_for<D, 2>(p, Hk, stream, op);
    check_launch(op);
  }
  if (!p.dq_add) launch_kv<D>(p, Hk, stream);  // depth only: the sequence part is done
  moda_bwd_convert_kernel<D><<<unsigned((rows * (D / 8) + 255) / 256), 256, 0, stream>>>(p);
  check_launch(op);
}

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace
}  // namespace moda_attn

size_t moda_attention_backward_workspace_bytes(const ModaAttentionShape& s) {
  const size_t rows = size_t(s.B) * size_t(s.T) * size_t(s.Hq);
  return moda_attn::align256(rows * size_t(s.d) * 4) + 2 * moda_attn::align256(rows * 4);
}

namespace moda_attn {
namespace {

// The depth backward on CUDA cores (moda_attention_depth_simt.cuh), one instantiation per group size.
template <int D>
void launch_simt_depth_backward(const simt::DepthParams& p, int G, cudaStream_t stream) {
  simt::with_group(G, [&](auto g) {
    simt::depth_backward<D, decltype(g)::value><<<simt::depth_grid(p), simt::kWarpsPerBlock * 32, 0, stream>>>(p);
  });
}

// Checks the operands (the sequence keys and their gradients only when they are used) and runs
// the kernels; `depth_only` adds the depth part of dq into dq and leaves k, v, dk, dv alone (small
// head groups on CUDA cores, which need no workspace).
void run_backward(const char* op, bool depth_only, const ModaAttentionShape& s, const bf16* q, ModaStrides qs,
                  const bf16* k, ModaStrides ks, const bf16* v, ModaStrides vs, const bf16* depth_k, ModaStrides dks,
                  const bf16* depth_v, ModaStrides dvs, const bf16* o, ModaStrides os, const float* lse,
                  const bf16* dout, ModaStrides dos, bf16* dq, ModaStrides dqs, bf16* dk, ModaStrides dks_out, bf16* dv,
                  ModaStrides dvs_out, bf16* d_depth_k, ModaStrides ddks, bf16* d_depth_v, ModaStrides ddvs,
                  bool accumulate_kv, bool accumulate_depth, void* workspace, cudaStream_t stream) {
  check_shape(s, op);
  MODA_CHECK(s.aligned(), op, ": the backward needs queries and keys at the same positions (q_offset 0, Tk = T)");
  const std::pair<const void*, const char*> ptrs[] = {{q, "q"}, {o, "o"}, {lse, "lse"}, {dout, "dout"}, {dq, "dq"}};
  for (const auto& [ptr, name] : ptrs) check_ptr(ptr, name, op);
  check_strides(qs, false, "q", op), check_strides(os, false, "o", op), check_strides(dos, false, "dout", op);
  check_strides(dqs, false, "dq", op);
  if (!depth_only) {
    check_ptr(k, "k", op), check_ptr(v, "v", op), check_ptr(dk, "dk", op), check_ptr(dv, "dv", op);
    check_strides(ks, false, "k", op), check_strides(vs, false, "v", op);
    check_strides(dks_out, false, "dk", op), check_strides(dvs_out, false, "dv", op);
  }
  if (s.L > 0) {
    check_ptr(depth_k, "depth_k", op), check_ptr(depth_v, "depth_v", op);
    check_ptr(d_depth_k, "d_depth_k", op), check_ptr(d_depth_v, "d_depth_v", op);
    check_strides(dks, true, "depth_k", op), check_strides(dvs, true, "depth_v", op);
    check_strides(ddks, true, "d_depth_k", op), check_strides(ddvs, true, "d_depth_v", op);
  }
  if (depth_only && simt::takes(s)) {
    auto p = simt::depth_params(s, q, qs, depth_k, dks, depth_v, dvs, o, os, const_cast<float*>(lse));
    p.dout = reinterpret_cast<const bf*>(dout), p.do_b = dos.batch, p.do_t = dos.token, p.do_h = dos.head;
    p.dq = reinterpret_cast<bf*>(dq), p.dq_b = dqs.batch, p.dq_t = dqs.token, p.dq_h = dqs.head;
    p.dkd = reinterpret_cast<bf*>(d_depth_k), p.dkd_b = ddks.batch, p.dkd_t = ddks.token, p.dkd_s = ddks.slot;
    p.dkd_h = ddks.head;
    p.dvd = reinterpret_cast<bf*>(d_depth_v), p.dvd_b = ddvs.batch, p.dvd_t = ddvs.token, p.dvd_s = ddvs.slot;
    p.dvd_h = ddvs.head;
    p.accumulate = accumulate_depth;
    if (s.d == 64)
      launch_simt_depth_backward<64>(p, int(s.group()), stream);
    else
      launch_simt_depth_backward<128>(p, int(s.group()), stream);
    return check_launch(op);
  }
  const size_t ws_bytes = moda_attention_backward_workspace_bytes(s);
  void* ws = workspace;
  if (!ws) MODA_CUDA_CHECK(cudaMallocAsync(&ws, ws_bytes, stream), op);
  MODA_CHECK(reinterpret_cast<uintptr_t>(ws) % 16 == 0, op, ": workspace must be 16-byte aligned");

  BwdParams p{};
  p.q = reinterpret_cast<const bf*>(q), p.k = reinterpret_cast<const bf*>(k), p.v = reinterpret_cast<const bf*>(v);
  p.kd = reinterpret_cast<const bf*>(depth_k), p.vd = reinterpret_cast<const bf*>(depth_v);
  p.o = reinterpret_cast<const bf*>(o), p.dout = reinterpret_cast<const bf*>(dout), p.lse = lse;
  p.dq = reinterpret_cast<bf*>(dq), p.dk = reinterpret_cast<bf*>(dk), p.dv = reinterpret_cast<bf*>(dv);
  p.dkd = reinterpret_cast<bf*>(d_depth_k), p.dvd = reinterpret_cast<bf*>(d_depth_v);
  const size_t rows = size_t(s.B) * size_t(s.T) * size_t(s.Hq);
  p.dq_acc = static_cast<float*>(ws);
  p.Dvec = reinterpret_cast<float*>(static_cast<char*>(ws) + align256(rows * size_t(s.d) * 4));
  p.Lse2 = reinterpret_cast<float*>(reinterpret_cast<char*>(p.Dvec) + align256(rows * 4));
  p.q_b = qs.batch, p.q_t = qs.token, p.q_h = qs.head;
  p.k_b = ks.batch, p.k_t = ks.token, p.k_h = ks.head;
  p.v_b = vs.batch, p.v_t = vs.token, p.v_h = vs.head;
  p.o_b = os.batch, p.o_t = os.token, p.o_h = os.head;
  p.do_b = dos.batch, p.do_t = dos.token, p.do_h = dos.head;
  p.kd_b = dks.batch, p.kd_t = dks.token, p.kd_s = dks.slot, p.kd_h = dks.head;
  p.vd_b = dvs.batch, p.vd_t = dvs.token, p.vd_s = dvs.slot, p.vd_h = dvs.head;
  p.dq_b = dqs.batch, p.dq_t = dqs.token, p.dq_h = dqs.head;
  p.dk_b = dks_out.batch, p.dk_t = dks_out.token, p.dk_h = dks_out.head;
  p.dv_b = dvs_out.batch, p.dv_t = dvs_out.token, p.dv_h = dvs_out.head;
  p.dkd_b = ddks.batch, p.dkd_t = ddks.token, p.dkd_s = ddks.slot, p.dkd_h = ddks.head;
  p.dvd_b = ddvs.batch, p.dvd_t = ddvs.token, p.dvd_s = ddvs.slot, p.dvd_h = ddvs.head;
  p.B = int(s.B), p.T = int(s.T), p.Hq = int(s.Hq), p.G = int(s.group()), p.L = int(s.L);
  p.causal = s.causal, p.acc_kv = accumulate_kv, p.acc_depth = accumulate_depth, p.dq_add = depth_only;
  p.scale = float(s.softmax_scale());
  p.sl2 = p.scale * kLog2e;
  if (s.d == 64)
    launch_bwd<64>(p, int(s.Hk), stream);
  else
    launch_bwd<128>(p, int(s.Hk), stream);
  if (!workspace) MODA_CUDA_CHECK(cudaFreeAsync(ws, stream), op);
}

}  // namespace
}  // namespace moda_attn

void moda_attention_backward(const ModaAttentionShape& s, const bf16* q, ModaStrides qs, const bf16* k, ModaStrides ks,
                             const bf16* v, ModaStrides vs, const bf16* depth_k, ModaStrides dks, const bf16* depth_v,
                             ModaStrides dvs, const bf16* o, ModaStrides os, const float* lse, const bf16* dout,
                             ModaStrides dos, bf16* dq, ModaStrides dqs, bf16* dk, ModaStrides dks_out, bf16* dv,
                             ModaStrides dvs_out, bf16* d_depth_k, ModaStrides ddks, bf16* d_depth_v, ModaStrides ddvs,
                             bool accumulate_kv, bool accumulate_depth, void* workspace, cudaStream_t stream) {
  moda_attn::run_backward("moda_attention_backward (cuda)", false, s, q, qs, k, ks, v, vs, depth_k, dks, depth_v, dvs,
                          o, os, lse, dout, dos, dq, dqs, dk, dks_out, dv, dvs_out, d_depth_k, ddks, d_depth_v, ddvs,
                          accumulate_kv, accumulate_depth, workspace, stream);
}

void moda_attention_backward_depth(const ModaAttentionShape& s, const bf16* q, ModaStrides qs, const bf16* depth_k,
                                   ModaStrides dks, const bf16* depth_v, ModaStrides dvs, const bf16* o, ModaStrides os,
                                   const float* lse, const bf16* dout, ModaStrides dos, bf16* dq, ModaStrides dqs,
                                   bf16* d_depth_k, ModaStrides ddks, bf16* d_depth_v, ModaStrides ddvs,
                                   bool accumulate_depth, void* workspace, cudaStream_t stream) {
  const char* op = "moda_attention_backward_depth (cuda)";
  MODA_CHECK(s.L > 0, op, ": needs depth keys (L > 0), got L = 0");
  moda_attn::run_backward(op, true, s, q, qs, nullptr, {}, nullptr, {}, depth_k, dks, depth_v, dvs, o, os, lse, dout,
                          dos, dq, dqs, nullptr, {}, nullptr, {}, d_depth_k, ddks, d_depth_v, ddvs, false,
                          accumulate_depth, workspace, stream);
}

}  // namespace moda::cuda
