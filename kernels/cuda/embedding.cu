#include <cuda_bf16.h>

#include <bit>
#include <cub/device/device_radix_sort.cuh>

#include "core/allocator.h"
#include "core/cuda_check.h"
#include "kernels/cuda/embedding.h"

namespace moda::cuda {

namespace {

// First out-of-range id seen on this device: position + 1 (0 = none), the id and the vocabulary size.
__device__ unsigned long long g_bad_pos = 0;
__device__ long long g_bad_id = 0;
__device__ long long g_bad_vocab = 0;

__device__ void record_bad_id(int64_t pos, int64_t id, int64_t vocab) {
  if (atomicCAS(&g_bad_pos, 0ull, (unsigned long long)(pos + 1)) == 0ull) {
    g_bad_id = id;
    g_bad_vocab = vocab;
  }
}

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

// One block per token row; 16-byte vector copies when the row size and pointers allow it.
template <typename T, typename I>
__global__ void forward_kernel(const T* __restrict__ table, const I* __restrict__ ids, T* __restrict__ out,
                               int64_t vocab, int64_t dim, bool vec) {
  const int64_t i = blockIdx.x;
  const int64_t id = static_cast<int64_t>(ids[i]);
  T* dst = out + i * dim;
  if (id < 0 || id >= vocab) {
    if (threadIdx.x == 0) record_bad_id(i, id, vocab);
    for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = T(0.f);
    return;
  }
  const T* src = table + id * dim;
  if (vec) {
    constexpr int kVec = 16 / sizeof(T);
    const uint4* s = reinterpret_cast<const uint4*>(src);
    uint4* d = reinterpret_cast<uint4*>(dst);
    for (int64_t j = threadIdx.x; j < dim / kVec; j += blockDim.x) d[j] = s[j];
  } else {
    for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = src[j];
  }
}

// Sort keys: the id, or `vocab` (sorted last, skipped) for an out-of-range id.
template <typename I>
__global__ void keys_kernel(const I* __restrict__ ids, int32_t* keys, int32_t* pos, int64_t n, int64_t vocab) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t id = static_cast<int64_t>(ids[i]);
    const bool ok = id >= 0 && id < vocab;
    if (!ok) record_bad_id(i, id, vocab);
    keys[i] = ok ? int32_t(id) : int32_t(vocab);
    pos[i] = int32_t(i);
  }
}

// Block (p, column chunk): if sorted entry p starts a run of equal ids, sum the run's rows in
// position order (the sort is stable) and add the sum into the table row once.
template <typename T>
__global__ void segment_sum_kernel(const T* __restrict__ dout, const int32_t* __restrict__ keys,
                                   const int32_t* __restrict__ pos, float* __restrict__ dtable, int64_t n,
                                   int64_t vocab, int64_t dim) {
  const int64_t p = blockIdx.x;
  const int32_t key = keys[p];
  if (key >= vocab || (p > 0 && keys[p - 1] == key)) return;
  const int64_t col = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (col >= dim) return;
  float acc = 0.f;
  for (int64_t q = p; q < n && keys[q] == key; ++q) acc += to_f(dout[int64_t(pos[q]) * dim + col]);
  dtable[int64_t(key) * dim + col] += acc;
}

template <typename T>
using Dev = std::conditional_t<std::is_same_v<T, bf16>, __nv_bfloat16, T>;

template <typename T, typename I>
void forward(const T* table, const I* ids, T* out, int64_t n, int64_t vocab, int64_t dim, cudaStream_t stream) {
  MODA_CHECK(n >= 0 && vocab >= 1 && dim >= 1, "embedding_forward: need n >= 0, vocab >= 1, dim >= 1, got n=", n,
             " vocab=", vocab, " dim=", dim);
  if (n == 0) return;
  MODA_CHECK(n < (int64_t(1) << 31), "embedding_forward: n=", n, " rows exceed the grid limit 2^31-1");
  constexpr int kVec = 16 / sizeof(T);
  const bool vec =
      dim % kVec == 0 && reinterpret_cast<uintptr_t>(table) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  const int threads = int(std::min<int64_t>(256, std::max<int64_t>(32, (vec ? dim / kVec : dim + 31) / 32 * 32)));
  forward_kernel<Dev<T>, I><<<unsigned(n), threads, 0, stream>>>(reinterpret_cast<const Dev<T>*>(table), ids,
                                                                 reinterpret_cast<Dev<T>*>(out), vocab, dim, vec);
  check_launch("embedding_forward");
}

size_t round_up(size_t x) { return (x + 255) / 256 * 256; }

template <typename T, typename I>
void backward(const T* dout, const I* ids, float* dtable, int64_t n, int64_t vocab, int64_t dim, cudaStream_t stream) {
  MODA_CHECK(n >= 0 && vocab >= 1 && dim >= 1, "embedding_backward: need n >= 0, vocab >= 1, dim >= 1, got n=", n,
             " vocab=", vocab, " dim=", dim);
  MODA_CHECK(vocab < INT32_MAX && n < INT32_MAX, "embedding_backward: vocab=", vocab, " and n=", n,
             " must be below 2^31-1 (32-bit sort keys)");
  if (n == 0) return;
  const int end_bit = std::bit_width(uint64_t(vocab));  // keys lie in [0, vocab]
  size_t sort_bytes = 0;
  MODA_CUDA_CHECK(
      cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, (const int32_t*)nullptr, (int32_t*)nullptr,
                                      (const int32_t*)nullptr, (int32_t*)nullptr, int(n), 0, end_bit, stream),
      "embedding_backward sort (size query)");
  const size_t arr = round_up(size_t(n) * sizeof(int32_t));
  int device = 0;
  MODA_CUDA_CHECK(cudaGetDevice(&device), "embedding_backward");
  char* scratch = static_cast<char*>(cuda_allocator::allocate(4 * arr + round_up(sort_bytes), device, stream));
  int32_t* keys_in = reinterpret_cast<int32_t*>(scratch);
  int32_t* keys_out = reinterpret_cast<int32_t*>(scratch + arr);
  int32_t* pos_in = reinterpret_cast<int32_t*>(scratch + 2 * arr);
  int32_t* pos_out = reinterpret_cast<int32_t*>(scratch + 3 * arr);
  void* sort_tmp = scratch + 4 * arr;
  try {
    keys_kernel<I><<<int(std::min<int64_t>((n + 255) / 256, 2048)), 256, 0, stream>>>(ids, keys_in, pos_in, n, vocab);
    check_launch("embedding_backward keys");
    MODA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_tmp, sort_bytes, keys_in, keys_out, pos_in, pos_out, int(n), 0,
                                                    end_bit, stream),
                    "embedding_backward sort");
    const int threads = int(std::min<int64_t>(256, (dim + 31) / 32 * 32));
    const dim3 grid(unsigned(n), unsigned((dim + threads - 1) / threads));
    segment_sum_kernel<Dev<T>>
        <<<grid, threads, 0, stream>>>(reinterpret_cast<const Dev<T>*>(dout), keys_out, pos_out, dtable, n, vocab, dim);
    check_launch("embedding_backward segment sum");
  } catch (...) {
    cuda_allocator::free(scratch);
    throw;
  }
  cuda_allocator::free(scratch);  // stream-ordered: reused only by later work on this stream
}

}  // namespace

void embedding_forward(const float* t, const int32_t* ids, float* o, int64_t n, int64_t v, int64_t d, cudaStream_t s) {
  forward(t, ids, o, n, v, d, s);
}
void embedding_forward(const float* t, const int64_t* ids, float* o, int64_t n, int64_t v, int64_t d, cudaStream_t s) {
  forward(t, ids, o, n, v, d, s);
}
void embedding_forward(const bf16* t, const int32_t* ids, bf16* o, int64_t n, int64_t v, int64_t d, cudaStream_t s) {
  forward(t, ids, o, n, v, d, s);
}
void embedding_forward(const bf16* t, const int64_t* ids, bf16* o, int64_t n, int64_t v, int64_t d, cudaStream_t s) {
  forward(t, ids, o, n, v, d, s);
}
void embedding_backward(const float* g, const int32_t* ids, float* dt, int64_t n, int64_t v, int64_t d,
                        cudaStream_t s) {
  backward(g, ids, dt, n, v, d, s);
}
void embedding_backward(const float* g, const int64_t* ids, float* dt, int64_t n, int64_t v, int64_t d,
                        cudaStream_t s) {
  backward(g, ids, dt, n, v, d, s);
}
void embedding_backward(const bf16* g, const int32_t* ids, float* dt, int64_t n, int64_t v, int64_t d, cudaStream_t s) {
  backward(g, ids, dt, n, v, d, s);
}
void embedding_backward(const bf16* g, const int64_t* ids, float* dt, int64_t n, int64_t v, int64_t d, cudaStream_t s) {
  backward(g, ids, dt, n, v, d, s);
}

void embedding_check_ids(cudaStream_t stream) {
  MODA_CUDA_CHECK(cudaStreamSynchronize(stream), "embedding_check_ids");
  unsigned long long pos = 0;
  MODA_CUDA_CHECK(cudaMemcpyFromSymbol(&pos, g_bad_pos, sizeof pos), "embedding_check_ids");
  if (pos == 0) return;
  long long id = 0, vocab = 0;
  MODA_CUDA_CHECK(cudaMemcpyFromSymbol(&id, g_bad_id, sizeof id), "embedding_check_ids");
  MODA_CUDA_CHECK(cudaMemcpyFromSymbol(&vocab, g_bad_vocab, sizeof vocab), "embedding_check_ids");
  const unsigned long long zero = 0;
  MODA_CUDA_CHECK(cudaMemcpyToSymbol(g_bad_pos, &zero, sizeof zero), "embedding_check_ids");
  MODA_FAIL("embedding: token id ", id, " at position ", pos - 1, " is outside the table [0, ", vocab, ")");
}

}  // namespace moda::cuda
