#pragma once
// The depth half of split MoDA attention on CUDA cores, for small head groups (G = Hq / Hk <= 4).
//
// Why not the tensor cores: with the sequence keys on cuDNN (autograd/attention_l0.h), what is
// left per token is G query rows against that token's own L depth keys — a G x L x d product per
// token. The mma.sync kernels (moda_attention_fwd.cu / _bwd.cu) pad it to 16-row tiles and
// 16-slot chunks, so at the LM shapes (G 2-4, L 2-72) most of each MMA is masked and the kernels
// are latency-bound at 1.7-2.5x the depth memory floor (docs/attention-kernels.md). The work is
// small (B*T*Hq*L*d MACs per pass) and the depth K,V are read once, so plain FMAs suffice.
//
// Design: one warp per (batch, token, KV head). Each lane owns 8 consecutive elements of d (one
// 16-byte load or store); a "row group" of d/8 lanes covers one depth slot, so a warp works on
// 32/(d/8) slots at once (4 at d = 64, 2 at d = 128) and strides through the L slots. Dot
// products reduce within the row group (log2(d/8) xor-shuffles). All G query rows of the KV head
// are at hand (in shared memory, a broadcast to the row groups), so every depth K,V row is read
// exactly once (the memory floor). The kernels are memory-bound: the depth rows (and, when the
// backward accumulates, the old depth gradients) travel by cp.async through a per-warp ring of
// shared memory 3-4 iterations deep, so each SM keeps ~100 KB requested without spending
// registers on it; each lane reads back only its own copies, so no barrier is needed.
// Measured (H200, 2026-12-03, `moda bench attention --cases train`): backward 1.03-1.13x the
// bytes it must move, forward 1.16-1.86x (docs/attention-kernels.md).
//   forward: online softmax of each row over the group's slots, then the row groups' partial
//            (max, sum, accumulator) are combined across the warp and merged with the sequence
//            part (o_s, lse_s) already in o and lse: the sequence part enters as one "key" whose
//            log-weight is lse_s and whose value is o_s.
//   backward: with MoDA's full o and lse, D = rowsum(dout * o) per row; per slot
//            p = exp(s - lse), ds = p (dout . v_d - D); dv_d = sum_g p dout_g, dk_d = scale
//            sum_g ds q_g (written once per slot: each slot belongs to one warp), dq_g += scale
//            sum_l ds k_d (reduced across row groups, added to dq in place).
// Included by moda_attention_fwd.cu / _bwd.cu, which launch these kernels when G <= 4, and by a
// CPU test that runs them lane by lane (tests/cpu/test_depth_simt_emulated.cpp): device code only
// here, no launch syntax.
#include <cstdint>
#include <type_traits>

#include "core/bf16.h"
#include "kernels/moda_attention_shape.h"
#ifndef MODA_SIMT_EMULATION  // tests/cpu/test_depth_simt_emulated.cpp runs these kernels on the CPU
#include <cuda_bf16.h>

#include "kernels/cuda/moda_attention_mma.cuh"
#endif

namespace moda::cuda::moda_attn::simt {

constexpr int kMaxGroup = 4;       // query heads per KV head this path handles
constexpr int kWarpsPerBlock = 4;  // small blocks: finer occupancy steps at 100-170 registers
// Depth rows travel global -> shared memory by cp.async through a per-warp ring of this many
// iterations, so that a warp keeps kStages - 1 iterations of loads in flight without holding them
// in registers (the kernels are memory-bound: each SM must keep ~30 KB requested).
constexpr int kForwardStages = 4;   // K, V: 4 x 2 KB per warp
constexpr int kBackwardStages = 3;  // K, V and the old depth gradients: 3 x 4 KB per warp

struct DepthParams {
  const __nv_bfloat16 *q, *kd, *vd, *dout;  // dout: backward only
  __nv_bfloat16 *o, *dq, *dkd, *dvd;        // o: forward in/out (read-only in backward); dq, dkd, dvd: backward
  float* lse;                               // [B, Hq, T]; forward in/out, backward in
  int64_t q_b, q_t, q_h, o_b, o_t, o_h, do_b, do_t, do_h, dq_b, dq_t, dq_h;
  int64_t kd_b, kd_t, kd_s, kd_h, vd_b, vd_t, vd_s, vd_h;
  int64_t dkd_b, dkd_t, dkd_s, dkd_h, dvd_b, dvd_t, dvd_s, dvd_h;
  int B, T, Hq, Hk, L;
  float scale;      // softmax scale
  bool accumulate;  // backward: add into dkd, dvd instead of overwriting
};

// 8 bf16 <-> 8 floats through one 16-byte access. The loads and stores go through __ldcg /
// __stcg (L2 only: every row is touched once) on uint4, which keeps them one 16-byte instruction;
// a plain dereference of a reinterpret_cast uint4 was split by nvcc into 2-, 4- and 8-byte pieces
// once the value was unpacked (seen in the PTX).
__device__ __forceinline__ void unpack8(const uint4& u, float (&x)[8]) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = unpack_bf16(w[i]);
    x[2 * i] = f.x, x[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&x)[8]) {
  unpack8(__ldcg(reinterpret_cast<const uint4*>(p)), x);
}
// The raw 16 bytes of a depth row, zeros when the slot does not exist (loaded one iteration
// ahead, so that a warp has two slots' loads in flight).
__device__ __forceinline__ uint4 fetch16(const __nv_bfloat16* p, bool valid) {
  return valid ? __ldcg(reinterpret_cast<const uint4*>(p)) : make_uint4(0, 0, 0, 0);
}
#ifndef MODA_SIMT_EMULATION  // the CPU test defines its own: a plain copy
// 16 bytes of a depth row into this lane's ring entry; zeros when the slot does not exist.
__device__ __forceinline__ void copy16_async(uint4* dst, const __nv_bfloat16* src, bool valid) {
  cp_async16(smem_addr(dst), src, valid);
}
#endif

__device__ __forceinline__ void store8(__nv_bfloat16* p, const float (&x)[8]) {
  uint4 u;
  u.x = pack_bf16(x[0], x[1]), u.y = pack_bf16(x[2], x[3]), u.z = pack_bf16(x[4], x[5]), u.w = pack_bf16(x[6], x[7]);
  __stcg(reinterpret_cast<uint4*>(p), u);
}

// Sum over the R lanes of a row group (R a power of two, groups aligned to R lanes).
template <int R>
__device__ __forceinline__ float group_sum(float x) {
#pragma unroll
  for (int off = R / 2; off > 0; off /= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

template <int R>
__device__ __forceinline__ float dot8(const float (&a)[8], const float (&b)[8]) {
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) s = fmaf(a[i], b[i], s);
  return group_sum<R>(s);
}

// Which (b, t, kv head) this warp handles; false for the tail warps of the last block.
struct WarpRow {
  int b, t, hk;
};
__device__ __forceinline__ bool warp_row(const DepthParams& p, WarpRow& r) {
  const int64_t w = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (w >= int64_t(p.B) * p.T * p.Hk) return false;
  r.hk = int(w % p.Hk);
  const int64_t bt = w / p.Hk;
  r.t = int(bt % p.T), r.b = int(bt / p.T);
  return true;
}

// D is the head dim (64 or 128), G the group size (1..4).
template <int D, int G>
__global__ void __launch_bounds__(kWarpsPerBlock * 32, 5) depth_merge_forward(DepthParams p) {  // <= 102 registers
  constexpr int R = D / 8, kGroups = 32 / R;
  WarpRow w;
  if (!warp_row(p, w)) return;
  const int lane = threadIdx.x % 32, grp = lane / R, col = (lane % R) * 8, wib = threadIdx.x / 32;
  const float sl2 = p.scale * kLog2e;

  // Everything this warp reads is requested up front: q (into shared memory, read by every row
  // group: a broadcast), and the sequence part o, lse it merges with at the end (row group 0), so
  // that no load waits after the slot loop. The registers go to the accumulators and the loads.
  __shared__ uint4 q_sh[kWarpsPerBlock][G][R];
  uint4 o_seq[G];
  float lse_seq[G], m[G], l[G], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const int h = w.hk * G + g;
    const uint4 qp = fetch16(p.q + w.b * p.q_b + w.t * p.q_t + h * p.q_h + col, true);
    if (grp == 0) q_sh[wib][g][lane] = qp;
    o_seq[g] = fetch16(p.o + w.b * p.o_b + w.t * p.o_t + h * p.o_h + col, grp == 0);
    lse_seq[g] = __ldcg(p.lse + (int64_t(w.b) * p.Hq + h) * p.T + w.t);
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[g][i] = 0.f;
    m[g] = -INFINITY, l[g] = 0.f;
  }
  __syncwarp();
  const __nv_bfloat16* kd = p.kd + w.b * p.kd_b + w.t * p.kd_t + w.hk * p.kd_h + col;
  const __nv_bfloat16* vd = p.vd + w.b * p.vd_b + w.t * p.vd_t + w.hk * p.vd_h + col;
  __shared__ uint4 k_ring[kWarpsPerBlock][kForwardStages][32], v_ring[kWarpsPerBlock][kForwardStages][32];
  const int iters = (p.L + kGroups - 1) / kGroups;
  auto request = [&](int it) {  // iteration it's slots into ring entry it % kForwardStages
    const int slot = it * kGroups + grp, st = it % kForwardStages;
    const bool valid = slot < p.L;
    copy16_async(&k_ring[wib][st][lane], kd + (valid ? slot : 0) * p.kd_s, valid);
    copy16_async(&v_ring[wib][st][lane], vd + (valid ? slot : 0) * p.vd_s, valid);
  };
#pragma unroll
  for (int it = 0; it < kForwardStages - 1; ++it) {
    if (it < iters) request(it);
    cp_async_commit();  // one group per iteration, empty ones included, so the wait count is fixed
  }
  for (int it = 0; it < iters; ++it) {
    const int slot = it * kGroups + grp;
    const bool valid = slot < p.L;
    // The entry refilled here was read (into registers) by this lane in the previous iteration.
    if (it + kForwardStages - 1 < iters) request(it + kForwardStages - 1);
    cp_async_commit();
    cp_async_wait<kForwardStages - 1>();  // iteration it's group has landed (each lane reads its own copy)
    float k[8], v[8];
    unpack8(k_ring[wib][it % kForwardStages][lane], k), unpack8(v_ring[wib][it % kForwardStages][lane], v);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float q[8];
      unpack8(q_sh[wib][g][lane % R], q);
      const float s = dot8<R>(q, k) * sl2;  // every lane of the group computes it (shuffles stay converged)
      if (valid) {
        const float mn = fmaxf(m[g], s), c = exp2f(m[g] - mn), e = exp2f(s - mn);
        l[g] = l[g] * c + e;
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[g][i] = fmaf(acc[g][i], c, e * v[i]);
        m[g] = mn;
      }
    }
  }
  // Combine the row groups (lanes grp*R + j for the same j hold the same columns), then merge
  // with the sequence part: (max lse_s*log2e, sum 1, accumulator o_s).
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const int h = w.hk * G + g;
    float mt = m[g];
#pragma unroll
    for (int off = R; off < 32; off *= 2) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, off));
    const float ms = lse_seq[g] * kLog2e;
    const float mx = fmaxf(mt, ms);  // finite: the sequence part has at least its own key
    const float c = m[g] == -INFINITY ? 0.f : exp2f(m[g] - mx);
    float lt = l[g] * c, a[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) a[i] = acc[g][i] * c;
#pragma unroll
    for (int off = R; off < 32; off *= 2) {
      lt += __shfl_xor_sync(0xffffffffu, lt, off);
#pragma unroll
      for (int i = 0; i < 8; ++i) a[i] += __shfl_xor_sync(0xffffffffu, a[i], off);
    }
    if (grp == 0) {
      float os[8];
      unpack8(o_seq[g], os);
      const float cs = exp2f(ms - mx), den = cs + lt, inv = 1.f / den;
#pragma unroll
      for (int i = 0; i < 8; ++i) os[i] = (cs * os[i] + a[i]) * inv;
      store8(p.o + w.b * p.o_b + w.t * p.o_t + h * p.o_h + col, os);
      if (lane == 0) p.lse[(int64_t(w.b) * p.Hq + h) * p.T + w.t] = (mx + log2f(den)) * kLn2;
    }
  }
}

template <int D, int G>
__global__ void __launch_bounds__(kWarpsPerBlock * 32, 4) depth_backward(DepthParams p) {  // <= 128 registers
  constexpr int R = D / 8, kGroups = 32 / R;
  WarpRow w;
  if (!warp_row(p, w)) return;
  const int lane = threadIdx.x % 32, grp = lane / R, col = (lane % R) * 8;
  const float sl2 = p.scale * kLog2e;

  // q and dout rows live in shared memory (every row group reads the same 16 bytes per lane: a
  // broadcast), not in registers: the registers go to the loads in flight, and the kernel is
  // memory-bound at 4 blocks (16 warps) per SM.
  __shared__ uint4 q_sh[kWarpsPerBlock][G][R], do_sh[kWarpsPerBlock][G][R];
  const int wib = threadIdx.x / 32;
  float lse2[G], Dg[G], dq[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const int h = w.hk * G + g;
    float o[8], dout[8];
    const uint4 qp = fetch16(p.q + w.b * p.q_b + w.t * p.q_t + h * p.q_h + col, true);
    const uint4 dop = fetch16(p.dout + w.b * p.do_b + w.t * p.do_t + h * p.do_h + col, true);
    if (grp == 0) q_sh[wib][g][lane] = qp, do_sh[wib][g][lane] = dop;
    unpack8(dop, dout), load8(p.o + w.b * p.o_b + w.t * p.o_t + h * p.o_h + col, o);
    Dg[g] = dot8<R>(dout, o);
    lse2[g] = p.lse[(int64_t(w.b) * p.Hq + h) * p.T + w.t] * kLog2e;
#pragma unroll
    for (int i = 0; i < 8; ++i) dq[g][i] = 0.f;
  }
  __syncwarp();
  const __nv_bfloat16* kd = p.kd + w.b * p.kd_b + w.t * p.kd_t + w.hk * p.kd_h + col;
  const __nv_bfloat16* vd = p.vd + w.b * p.vd_b + w.t * p.vd_t + w.hk * p.vd_h + col;
  __nv_bfloat16* dkd = p.dkd + w.b * p.dkd_b + w.t * p.dkd_t + w.hk * p.dkd_h + col;
  __nv_bfloat16* dvd = p.dvd + w.b * p.dvd_b + w.t * p.dvd_t + w.hk * p.dvd_h + col;
  // K, V and (accumulate mode) the old depth gradients of kBackwardStages - 1 iterations ahead
  // are in flight while this one computes, so the read-modify-write never waits in the loop.
  constexpr int S = kBackwardStages;
  __shared__ uint4 k_ring[kWarpsPerBlock][S][32], v_ring[kWarpsPerBlock][S][32];
  __shared__ uint4 dk_ring[kWarpsPerBlock][S][32], dv_ring[kWarpsPerBlock][S][32];
  const bool acc = p.accumulate;
  const int iters = (p.L + kGroups - 1) / kGroups;
  auto request = [&](int it) {
    const int slot = it * kGroups + grp, st = it % S, sl = slot < p.L ? slot : 0;
    const bool valid = slot < p.L;
    copy16_async(&k_ring[wib][st][lane], kd + sl * p.kd_s, valid);
    copy16_async(&v_ring[wib][st][lane], vd + sl * p.vd_s, valid);
    copy16_async(&dk_ring[wib][st][lane], dkd + sl * p.dkd_s, valid && acc);  // zeros unless accumulating
    copy16_async(&dv_ring[wib][st][lane], dvd + sl * p.dvd_s, valid && acc);
  };
#pragma unroll
  for (int it = 0; it < S - 1; ++it) {
    if (it < iters) request(it);
    cp_async_commit();
  }
  for (int it = 0; it < iters; ++it) {
    const int slot = it * kGroups + grp, st = it % S;
    const bool valid = slot < p.L;
    if (it + S - 1 < iters) request(it + S - 1);
    cp_async_commit();
    cp_async_wait<S - 1>();
    float k[8], v[8], dk[8], dv[8];
    unpack8(k_ring[wib][st][lane], k), unpack8(v_ring[wib][st][lane], v);
    unpack8(dk_ring[wib][st][lane], dk), unpack8(dv_ring[wib][st][lane], dv);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float q[8], dout[8];
      unpack8(q_sh[wib][g][lane % R], q), unpack8(do_sh[wib][g][lane % R], dout);
      const float s = dot8<R>(q, k) * sl2, dp = dot8<R>(dout, v);
      const float pr = valid ? exp2f(s - lse2[g]) : 0.f, ds = pr * (dp - Dg[g]), dss = ds * p.scale;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        dv[i] = fmaf(pr, dout[i], dv[i]);
        dk[i] = fmaf(dss, q[i], dk[i]);  // dk starts at the old gradient, so the scale goes into ds
        dq[g][i] = fmaf(ds, k[i], dq[g][i]);
      }
    }
    if (valid) store8(dkd + slot * p.dkd_s, dk), store8(dvd + slot * p.dvd_s, dv);
  }
  // dq: the row groups hold partial sums over their slots; add the total into dq (the sequence
  // keys' part is already there).
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int off = R; off < 32; off *= 2)
#pragma unroll
      for (int i = 0; i < 8; ++i) dq[g][i] += __shfl_xor_sync(0xffffffffu, dq[g][i], off);
    if (grp == 0) {
      __nv_bfloat16* dqp = p.dq + w.b * p.dq_b + w.t * p.dq_t + (w.hk * G + g) * p.dq_h + col;
      float cur[8];
      load8(dqp, cur);
#pragma unroll
      for (int i = 0; i < 8; ++i) cur[i] = fmaf(p.scale, dq[g][i], cur[i]);
      store8(dqp, cur);
    }
  }
}

// The parameters both kernels read, from the public functions' arguments (checked there).
inline DepthParams depth_params(const ModaAttentionShape& s, const bf16* q, ModaStrides qs, const bf16* kd,
                                ModaStrides kds, const bf16* vd, ModaStrides vds, const bf16* o, ModaStrides os,
                                float* lse) {
  DepthParams p{};
  p.q = reinterpret_cast<const __nv_bfloat16*>(q), p.kd = reinterpret_cast<const __nv_bfloat16*>(kd);
  p.vd = reinterpret_cast<const __nv_bfloat16*>(vd);
  p.o = reinterpret_cast<__nv_bfloat16*>(const_cast<bf16*>(o)), p.lse = lse;
  p.q_b = qs.batch, p.q_t = qs.token, p.q_h = qs.head;
  p.o_b = os.batch, p.o_t = os.token, p.o_h = os.head;
  p.kd_b = kds.batch, p.kd_t = kds.token, p.kd_s = kds.slot, p.kd_h = kds.head;
  p.vd_b = vds.batch, p.vd_t = vds.token, p.vd_s = vds.slot, p.vd_h = vds.head;
  p.B = int(s.B), p.T = int(s.T), p.Hq = int(s.Hq), p.Hk = int(s.Hk), p.L = int(s.L);
  p.scale = float(s.softmax_scale());
  return p;
}

// Whether this path takes the shape (else the mma.sync kernels do).
inline bool takes(const ModaAttentionShape& s) { return s.group() <= kMaxGroup && s.aligned(); }

inline dim3 depth_grid(const DepthParams& p) {
  const int64_t warps = int64_t(p.B) * p.T * p.Hk;
  return dim3(unsigned((warps + kWarpsPerBlock - 1) / kWarpsPerBlock));
}

// Calls launch(std::integral_constant<int, G>{}) for the group size G in 1..kMaxGroup: one kernel
// instantiation per G (a warp keeps its G query rows' state in registers).
template <class Launch>
void with_group(int G, Launch&& launch) {
  if (G == 1)
    launch(std::integral_constant<int, 1>{});
  else if (G == 2)
    launch(std::integral_constant<int, 2>{});
  else if (G == 3)
    launch(std::integral_constant<int, 3>{});
  else
    launch(std::integral_constant<int, 4>{});
}

}  // namespace moda::cuda::moda_attn::simt
