#pragma once
// Device-side helpers shared by the memory-bound kernels (elementwise, reduce, rmsnorm, rope, swiglu,
// softmax). Include from .cu files only. Data is stored as float or moda::bf16 (read here as raw
// uint16_t bits); all math is fp32. Vector accesses move 16 bytes per load/store, which is what lets
// these kernels approach the copy bandwidth; a scalar variant (N = 1) serves misaligned or odd sizes.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/allocator.h"
#include "core/bf16.h"
#include "core/cuda_check.h"

namespace moda::cuda::detail {

template <typename T>
struct Raw {
  using type = T;
};
template <>
struct Raw<bf16> {
  using type = uint16_t;
};
template <typename T>
using raw_t = typename Raw<T>::type;

__device__ __forceinline__ float raw_to_float(float v) { return v; }
__device__ __forceinline__ float raw_to_float(uint16_t v) { return __uint_as_float(uint32_t(v) << 16); }

template <typename T>
__device__ __forceinline__ raw_t<T> raw_from_float(float v);
template <>
__device__ __forceinline__ float raw_from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ uint16_t raw_from_float<bf16>(float v) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));  // round to nearest even, like core/bf16.h
}

template <typename R, int K>
struct alignas(sizeof(R) * K) RawPack {
  R v[K];
};

// Elements per 16-byte access for storage type T.
template <typename T>
constexpr int vec_width() {
  return 16 / int(sizeof(T));
}

// Loads N consecutive elements as floats, in 16-byte pieces when N spans 16 bytes or more
// (p must then be 16-byte aligned), else element by element.
template <typename T, int N>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[N]) {
  using R = raw_t<T>;
  constexpr int per = (16 / int(sizeof(R))) < N ? 16 / int(sizeof(R)) : N;
  const R* rp = reinterpret_cast<const R*>(p);
#pragma unroll
  for (int c = 0; c < N; c += per) {
    RawPack<R, per> pk = *reinterpret_cast<const RawPack<R, per>*>(rp + c);
#pragma unroll
    for (int k = 0; k < per; ++k) out[c + k] = raw_to_float(pk.v[k]);
  }
}

template <typename T, int N>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[N]) {
  using R = raw_t<T>;
  constexpr int per = (16 / int(sizeof(R))) < N ? 16 / int(sizeof(R)) : N;
  R* rp = reinterpret_cast<R*>(p);
#pragma unroll
  for (int c = 0; c < N; c += per) {
    RawPack<R, per> pk;
#pragma unroll
    for (int k = 0; k < per; ++k) pk.v[k] = raw_from_float<T>(in[c + k]);
    *reinterpret_cast<RawPack<R, per>*>(rp + c) = pk;
  }
}

__device__ __forceinline__ float load1(const float* p) { return *p; }
__device__ __forceinline__ float load1(const bf16* p) { return raw_to_float(*reinterpret_cast<const uint16_t*>(p)); }
__device__ __forceinline__ void store1(float* p, float v) { *p = v; }
__device__ __forceinline__ void store1(bf16* p, float v) { *reinterpret_cast<uint16_t*>(p) = raw_from_float<bf16>(v); }

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Sum / max over the G threads of a row group (G a power of two). G <= 32: the group is an aligned
// run of G lanes, reduced with a butterfly (every lane ends with the same bits, since a + b == b + a
// exactly). G > 32: the group is the whole block; warp results meet in `scratch` (>= 32 floats of
// shared memory). Every thread of the block must call it (the same number of times).
struct SumOp {
  static constexpr float identity = 0.0f;
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  static constexpr float identity = -std::numeric_limits<float>::infinity();
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename Op>
__device__ __forceinline__ float group_reduce(float v, int G, float* scratch, Op op) {
  const int width = G < 32 ? G : 32;
  for (int o = width / 2; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (G <= 32) return v;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // a previous call may still be reading scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < G / 32 ? scratch[lane] : Op::identity;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Host side: number of SMs of the current device (cached per device).
inline int sm_count() {
  static int counts[64] = {0};
  int dev = 0;
  MODA_CUDA_CHECK(cudaGetDevice(&dev), "sm_count");
  if (dev < 64 && counts[dev] > 0) return counts[dev];
  int n = 0;
  MODA_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev), "sm_count");
  if (dev < 64) counts[dev] = n;
  return n;
}

// Blocks of `kernel` that fit on the device at once: the grid for grid-stride loops (one full wave,
// no tail wave), capped by the blocks the work needs.
template <typename Kernel>
int resident_grid(Kernel kernel, int threads, size_t smem, int64_t needed_blocks) {
  int per_sm = 0;
  MODA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem), "occupancy");
  const int64_t full = int64_t(std::max(per_sm, 1)) * sm_count();
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(full, needed_blocks)));
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Device scratch from the caching allocator, returned when the launches that use it are queued:
// stream order makes the reuse safe (later work on this stream runs after those kernels).
struct DeviceScratch {
  void* ptr = nullptr;
  DeviceScratch(size_t bytes, cudaStream_t stream) {
    int dev = 0;
    MODA_CUDA_CHECK(cudaGetDevice(&dev), "kernel scratch");
    ptr = cuda_allocator::allocate(bytes, dev, stream);
  }
  ~DeviceScratch() { cuda_allocator::free(ptr); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

// Row-wise kernels (RMSNorm, softmax) give each row to a group of G threads (G a power of two);
// every thread holds at most kRowElemsPerThread elements of its row in registers, so a row is read
// from memory once. Groups of G <= 32 lanes share a 256-thread block; larger groups are the block.
constexpr int kRowElemsPerThread = 16;
constexpr int64_t kMaxRowCols = 1024 * kRowElemsPerThread;

struct RowLayout {
  int G = 1, threads = 256, groups_per_block = 256;
};

// Loads the C vector chunks of a row that lane `lane` of a G-thread group owns (chunk c covers
// elements [(c*G + lane)*N, +N)); chunks past the row, or of rows that do not exist, read as `fill`.
template <typename T, int N, int C>
__device__ __forceinline__ void load_row(float (&v)[C][N], const T* row, int64_t nvec, int G, int lane, bool valid,
                                         float fill) {
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int64_t idx = int64_t(c) * G + lane;
    if (valid && idx < nvec)
      load_vec<T, N>(row + idx * N, v[c]);
    else
#pragma unroll
      for (int k = 0; k < N; ++k) v[c][k] = fill;
  }
}

inline RowLayout row_layout(int64_t cols, int N, const char* op) {
  MODA_CHECK(cols > 0, op, ": cols must be positive, got ", cols);
  MODA_CHECK(cols <= kMaxRowCols, op, ": rows of ", cols, " elements exceed the fused kernel's limit of ", kMaxRowCols,
             " (1024 threads x ", kRowElemsPerThread, " elements)");
  const int64_t nvec = ceil_div(cols, N), per_thread = kRowElemsPerThread / N;
  RowLayout l;
  while (int64_t(l.G) * per_thread < nvec) l.G *= 2;
  l.threads = l.G <= 32 ? 256 : l.G;
  l.groups_per_block = l.threads / l.G;
  return l;
}

}  // namespace moda::cuda::detail
