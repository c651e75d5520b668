#include <cuda_bf16.h>

#include "core/cuda_check.h"
#include "kernels/cuda/cross_entropy.h"

namespace moda::cuda {

namespace {

constexpr int kThreads = 256;

// First bad target seen on this device: row + 1 (0 = none), the target and the vocabulary size.
__device__ unsigned long long g_bad_row = 0;
__device__ long long g_bad_target = 0;
__device__ long long g_bad_vocab = 0;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }

// A 16-byte pack of T: 4 floats or 8 bf16.
template <typename T>
struct Pack {
  static constexpr int N = 16 / sizeof(T);
  union {
    uint4 raw;
    T v[N];
  };
  __device__ Pack() {}
};

// Visits row elements [0, v) of x: a scalar head up to 16-byte alignment, 16-byte packs, a scalar
// tail. fs(j) handles one element, fp(j0, pack_index) one pack starting at element j0.
template <typename T, typename FS, typename FP>
__device__ __forceinline__ void visit_row(const T* x, int64_t v, FS&& fs, FP&& fp) {
  constexpr int N = Pack<T>::N;
  const int64_t mis = (reinterpret_cast<uintptr_t>(x) % 16) / sizeof(T);
  const int64_t want = mis == 0 ? 0 : N - mis;
  const int64_t head = v < want ? v : want;
  const int64_t packs = (v - head) / N;
  for (int64_t j = threadIdx.x; j < head; j += blockDim.x) fs(j);
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) fp(head + p * N, p);
  for (int64_t j = head + packs * N + threadIdx.x; j < v; j += blockDim.x) fs(j);
}

// Online softmax statistics: m = running max, s = sum exp(x - m).
struct Stat {
  float m, s;
};
__device__ __forceinline__ Stat merge(Stat a, Stat b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.f};
  return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
}

__device__ Stat block_reduce(Stat st) {
  __shared__ Stat warp_stats[kThreads / 32];
  for (int o = 16; o > 0; o /= 2) {
    Stat other{__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o)};
    st = merge(st, other);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_stats[warp] = st;
  __syncthreads();
  if (warp == 0) {
    st = lane < kThreads / 32 ? warp_stats[lane] : Stat{-INFINITY, 0.f};
    for (int o = 16; o > 0; o /= 2) {
      Stat other{__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o)};
      st = merge(st, other);
    }
    if (lane == 0) warp_stats[0] = st;
  }
  __syncthreads();
  return warp_stats[0];
}

// Target of a row: -1 when ignored or out of range (the latter is flagged once).
template <typename I>
__device__ __forceinline__ int64_t row_target(const I* targets, int64_t row, int64_t v, int64_t ignore, bool flag) {
  const int64_t t = static_cast<int64_t>(targets[row]);
  if (t == ignore) return -1;
  if (t < 0 || t >= v) {
    if (flag && atomicCAS(&g_bad_row, 0ull, (unsigned long long)(row + 1)) == 0ull) {
      g_bad_target = t;
      g_bad_vocab = v;
    }
    return -1;
  }
  return t;
}

template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ logits, const I* __restrict__ targets, float* __restrict__ row_loss,
                   float* __restrict__ lse, int64_t v, int64_t ignore) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * v;
  Stat st{-INFINITY, 0.f};
  visit_row(
      x, v,
      [&](int64_t j) {
        const float val = to_f(x[j]);
        st = merge(st, Stat{val, 1.f});
      },
      [&](int64_t j0, int64_t) {
        Pack<T> pk;
        pk.raw = *reinterpret_cast<const uint4*>(x + j0);
        float lm = to_f(pk.v[0]);
#pragma unroll
        for (int i = 1; i < Pack<T>::N; ++i) lm = fmaxf(lm, to_f(pk.v[i]));
        if (lm > st.m) {
          st.s *= __expf(st.m - lm);
          st.m = lm;
        }
        if (st.m == -INFINITY) return;
#pragma unroll
        for (int i = 0; i < Pack<T>::N; ++i) st.s += __expf(to_f(pk.v[i]) - st.m);
      });
  st = block_reduce(st);
  if (threadIdx.x == 0) {
    const float l = st.m + __logf(st.s);
    lse[row] = l;
    const int64_t t = row_target(targets, row, v, ignore, true);
    row_loss[row] = t < 0 ? 0.f : l - to_f(x[t]);
  }
}

// One block, fixed order: mean over rows whose target is kept, and their count.
template <typename I>
__global__ void __launch_bounds__(1024) mean_kernel(const float* __restrict__ row_loss, const I* __restrict__ targets,
                                                    float* mean, int64_t* count, int64_t n, int64_t v, int64_t ignore) {
  __shared__ double sums[32];
  __shared__ long long counts[32];
  double s = 0.0;
  long long c = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    if (row_target(targets, i, v, ignore, false) >= 0) s += row_loss[i], ++c;
  for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o), c += __shfl_xor_sync(0xffffffffu, c, o);
  if (threadIdx.x % 32 == 0) sums[threadIdx.x / 32] = s, counts[threadIdx.x / 32] = c;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    long long kept = 0;
    for (int w = 0; w < int(blockDim.x / 32); ++w) total += sums[w], kept += counts[w];
    *mean = kept > 0 ? float(total / double(kept)) : 0.f;
    *count = kept;
  }
}

template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const T* logits, const I* __restrict__ targets, const float* __restrict__ lse,
                    const float* __restrict__ dloss, const int64_t* __restrict__ count, T* dlogits, int64_t v,
                    int64_t ignore) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * v;
  T* dx = dlogits + row * v;
  const int64_t t = row_target(targets, row, v, ignore, false);
  const int64_t c = *count;
  const float scale = (t < 0 || c == 0) ? 0.f : *dloss / float(c);
  const float l = lse[row];
  // Same offset from 16-byte alignment for x and dx is required for the shared visit; both rows
  // start at row * v of equally aligned buffers (checked by the launcher).
  visit_row(
      x, v,
      [&](int64_t j) {
        const float p = scale == 0.f ? 0.f : __expf(to_f(x[j]) - l);
        store(dx + j, (p - (j == t ? 1.f : 0.f)) * scale);
      },
      [&](int64_t j0, int64_t) {
        Pack<T> in, out;
        in.raw = *reinterpret_cast<const uint4*>(x + j0);
#pragma unroll
        for (int i = 0; i < Pack<T>::N; ++i) {
          const float p = scale == 0.f ? 0.f : __expf(to_f(in.v[i]) - l);
          store(&out.v[i], (p - (j0 + i == t ? 1.f : 0.f)) * scale);
        }
        *reinterpret_cast<uint4*>(dx + j0) = out.raw;
      });
}

template <typename T>
using Dev = std::conditional_t<std::is_same_v<T, bf16>, __nv_bfloat16, T>;

void check_shape(const char* op, int64_t n, int64_t v) {
  MODA_CHECK(n >= 0 && v >= 1, op, ": need n >= 0 rows and v >= 1 classes, got n=", n, " v=", v);
  MODA_CHECK(n < (int64_t(1) << 31), op, ": n=", n, " rows exceed the grid limit 2^31-1");
}

template <typename T, typename I>
void forward(const T* logits, const I* targets, float* row_loss, float* lse, float* mean, int64_t* count, int64_t n,
             int64_t v, int64_t ignore, cudaStream_t stream) {
  check_shape("cross_entropy_forward", n, v);
  if (n > 0) {
    forward_kernel<Dev<T>, I><<<unsigned(n), kThreads, 0, stream>>>(reinterpret_cast<const Dev<T>*>(logits), targets,
                                                                    row_loss, lse, v, ignore);
    check_launch("cross_entropy_forward");
  }
  mean_kernel<I><<<1, 1024, 0, stream>>>(row_loss, targets, mean, count, n, v, ignore);
  check_launch("cross_entropy_forward mean");
}

template <typename T, typename I>
void backward(const T* logits, const I* targets, const float* lse, const float* dloss, const int64_t* count, T* dlogits,
              int64_t n, int64_t v, int64_t ignore, cudaStream_t stream) {
  check_shape("cross_entropy_backward", n, v);
  MODA_CHECK(reinterpret_cast<uintptr_t>(logits) % 16 == reinterpret_cast<uintptr_t>(dlogits) % 16,
             "cross_entropy_backward: logits and dlogits must have the same alignment modulo 16 bytes");
  if (n == 0) return;
  backward_kernel<Dev<T>, I><<<unsigned(n), kThreads, 0, stream>>>(reinterpret_cast<const Dev<T>*>(logits), targets,
                                                                   lse, dloss, count,
                                                                   reinterpret_cast<Dev<T>*>(dlogits), v, ignore);
  check_launch("cross_entropy_backward");
}

}  // namespace

#define MODA_CE_CUDA(T, I)                                                                                      \
  void cross_entropy_forward(const T* logits, const I* targets, float* row_loss, float* lse, float* mean_loss,  \
                             int64_t* count, int64_t n, int64_t v, int64_t ignore_index, cudaStream_t stream) { \
    forward(logits, targets, row_loss, lse, mean_loss, count, n, v, ignore_index, stream);                      \
  }                                                                                                             \
  void cross_entropy_backward(const T* logits, const I* targets, const float* lse, const float* dloss,          \
                              const int64_t* count, T* dlogits, int64_t n, int64_t v, int64_t ignore_index,     \
                              cudaStream_t stream) {                                                            \
    backward(logits, targets, lse, dloss, count, dlogits, n, v, ignore_index, stream);                          \
  }
MODA_CE_CUDA(float, int32_t)
MODA_CE_CUDA(float, int64_t)
MODA_CE_CUDA(bf16, int32_t)
MODA_CE_CUDA(bf16, int64_t)

void cross_entropy_check_targets(cudaStream_t stream) {
  MODA_CUDA_CHECK(cudaStreamSynchronize(stream), "cross_entropy_check_targets");
  unsigned long long row = 0;
  MODA_CUDA_CHECK(cudaMemcpyFromSymbol(&row, g_bad_row, sizeof row), "cross_entropy_check_targets");
  if (row == 0) return;
  long long target = 0, vocab = 0;
  MODA_CUDA_CHECK(cudaMemcpyFromSymbol(&target, g_bad_target, sizeof target), "cross_entropy_check_targets");
  MODA_CUDA_CHECK(cudaMemcpyFromSymbol(&vocab, g_bad_vocab, sizeof vocab), "cross_entropy_check_targets");
  const unsigned long long zero = 0;
  MODA_CUDA_CHECK(cudaMemcpyToSymbol(g_bad_row, &zero, sizeof zero), "cross_entropy_check_targets");
  MODA_FAIL("cross_entropy: target ", target, " at row ", row - 1, " is outside [0, ", vocab,
            ") and is not ignore_index");
}

}  // namespace moda::cuda
