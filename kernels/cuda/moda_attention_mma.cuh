#pragma once
// Device building blocks of the MoDA attention kernels (moda_attention_fwd.cu / _bwd.cu):
// cp.async copies, ldmatrix, mma.sync m16n8k16 bf16 -> fp32, swizzled shared-memory tiles and
// the launch-side argument checks. Included by .cu files only.
//
// Fragment layouts of mma.m16n8k16 (lane = 4 * gid + tid4):
//   A (16x16, row-major): a[0] = A[gid][2t..2t+1], a[1] = A[gid+8][2t..], a[2] = A[gid][2t+8..], a[3] =
//   A[gid+8][2t+8..] B (16x8, "col"):      b[0] = B[2t..2t+1][gid],  b[1] = B[2t+8..2t+9][gid] C (16x8, fp32): c[0..1]
//   = C[gid][2t..2t+1], c[2..3] = C[gid+8][2t..2t+1]
// so the C fragments of two adjacent n-tiles, packed to bf16, are exactly the A fragment of a
// 16x16 block (used for P.V without going through shared memory).
#include <cuda_bf16.h>

#include <cstdint>

#include "core/error.h"
#include "kernels/moda_attention_shape.h"

namespace moda::cuda::moda_attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; zero-fills the destination when !valid (src is not read then).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
// 4-byte variant (row statistics).
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool valid) {
  const int n = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
__device__ __forceinline__ float2 unpack_bf16(uint32_t v) {
  __nv_bfloat162 h = *reinterpret_cast<__nv_bfloat162*>(&v);
  return __bfloat1622float2(h);
}

// Byte offset of 16-byte chunk `chunk` of row `row` in a tile whose rows hold NC chunks. The
// chunk index is XOR-ed with a function of the row so that the 8 rows one ldmatrix reads (and the
// 8 rows a warp's quads touch) fall in distinct bank groups.
template <int NC>
__device__ __forceinline__ uint32_t swz(int row, int chunk) {
  static_assert(NC == 2 || NC == 4 || NC % 8 == 0, "rows of 2, 4 or 8k chunks");
  int x;
  if constexpr (NC >= 8)
    x = row & 7;
  else if constexpr (NC == 4)
    x = (row >> 1) & 3;
  else
    x = (row >> 2) & 1;
  return static_cast<uint32_t>(row * NC * 16 + ((chunk ^ x) << 4));
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Launch-side checks shared by forward and backward (throw moda::Error with the op's name).
inline void check_ptr(const void* p, const char* what, const char* op) {
  MODA_CHECK(p != nullptr, op, ": ", what, " must not be null");
  MODA_CHECK(reinterpret_cast<uintptr_t>(p) % 16 == 0, op, ": ", what, " must be 16-byte aligned");
}
inline void check_strides(const ModaStrides& s, bool depth, const char* what, const char* op) {
  const bool ok = s.batch % 8 == 0 && s.token % 8 == 0 && s.head % 8 == 0 && (!depth || s.slot % 8 == 0);
  MODA_CHECK(ok, op, ": strides of ", what, " must be multiples of 8 elements, got batch=", s.batch, " token=", s.token,
             " slot=", s.slot, " head=", s.head);
}
inline void check_shape(const ModaAttentionShape& s, const char* op) {
  s.validate(op);
  MODA_CHECK(s.d == 64 || s.d == 128, op, ": head dim d must be 64 or 128, got ", s.d);
  MODA_CHECK(s.group() <= 32, op, ": G = Hq / Hk must be <= 32, got ", s.group());
  MODA_CHECK(s.softmax_scale() > 0, op, ": scale must be > 0, got ", s.scale);
  MODA_CHECK(s.T < (int64_t(1) << 31) && s.B * s.Hq * s.T < (int64_t(1) << 40), op, ": T=", s.T, " too large");
  MODA_CHECK(s.keys() < (int64_t(1) << 31), op, ": Tk=", s.keys(), " too large");
}

}  // namespace moda::cuda::moda_attn
