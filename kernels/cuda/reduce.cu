#include "kernels/cuda/reduce.h"

#include "kernels/cuda/elementwise.cuh"

namespace moda::cuda {
namespace {

using namespace detail;

constexpr int kSumThreads = 256;
constexpr int kMaxPartials = 1024;  // the final pass is one block of this many threads

__device__ double block_sum_double(double v, double* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < blockDim.x / 32 ? scratch[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int N, typename T>
__global__ void sum_partials_kernel(double* partials, const T* x, int64_t n) {
  __shared__ double scratch[32];
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / N;
  double acc = 0.0;
  for (int64_t i = first; i < nvec; i += stride) {
    float v[N];
    load_vec<T, N>(x + i * N, v);
    float s = 0.0f;  // N <= 8 values: fp32 inside the vector, double across the loop
#pragma unroll
    for (int k = 0; k < N; ++k) s += v[k];
    acc += s;
  }
  for (int64_t i = nvec * N + first; i < n; i += stride) acc += load1(x + i);
  acc = block_sum_double(acc, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sum_final_kernel(float* out, const double* partials, int count, double scale) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum_double(acc, scratch);
  if (threadIdx.x == 0) out[0] = static_cast<float>(acc * scale);
}

template <int N, typename T>
void sum_impl(float* out, const T* x, int64_t n, double scale, cudaStream_t stream, const char* op) {
  auto kernel = sum_partials_kernel<N, T>;
  const int grid = std::min(kMaxPartials, resident_grid(kernel, kSumThreads, 0, ceil_div(ceil_div(n, N), kSumThreads)));
  DeviceScratch partials(grid * sizeof(double), stream);
  kernel<<<grid, kSumThreads, 0, stream>>>(static_cast<double*>(partials.ptr), x, n);
  check_launch(op);
  sum_final_kernel<<<1, kMaxPartials, 0, stream>>>(out, static_cast<const double*>(partials.ptr), grid, scale);
  check_launch(op);
}

template <typename T>
void sum_dispatch(float* out, const T* x, int64_t n, double scale, cudaStream_t stream, const char* op) {
  if (aligned16(x))
    sum_impl<vec_width<T>()>(out, x, n, scale, stream, op);
  else
    sum_impl<1>(out, x, n, scale, stream, op);
}

// Column sums: a block is 32 x 8 threads over 32*N columns; threadIdx.y splits the rows of the
// block's row chunk, and the 8 partial sums meet in shared memory in a fixed order. dst is `out`
// (one chunk) or a [chunks, cols] partials matrix.
constexpr int kColThreadsX = 32, kColThreadsY = 8;

template <int N, typename T>
__global__ void column_sum_kernel(float* dst, const T* x, int64_t rows, int64_t cols, int64_t rows_per_chunk,
                                  bool accumulate) {
  __shared__ float part[kColThreadsY][kColThreadsX * N];
  const int64_t c0 = (int64_t(blockIdx.x) * kColThreadsX + threadIdx.x) * N;
  const int64_t r_begin = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r_end = min(rows, r_begin + rows_per_chunk);
  float acc[N] = {};
  if (c0 < cols) {  // vector mode guarantees cols % N == 0, so the whole vector is in range
#pragma unroll 4
    for (int64_t r = r_begin + threadIdx.y; r < r_end; r += kColThreadsY) {
      float v[N];
      load_vec<T, N>(x + r * cols + c0, v);
#pragma unroll
      for (int k = 0; k < N; ++k) acc[k] += v[k];
    }
  }
#pragma unroll
  for (int k = 0; k < N; ++k) part[threadIdx.y][threadIdx.x * N + k] = acc[k];
  __syncthreads();
  if (threadIdx.y == 0 && c0 < cols) {
#pragma unroll
    for (int k = 0; k < N; ++k) {
      float s = 0.0f;
      for (int y = 0; y < kColThreadsY; ++y) s += part[y][threadIdx.x * N + k];
      float* d = dst + int64_t(blockIdx.y) * cols + c0 + k;
      *d = accumulate ? *d + s : s;
    }
  }
}

template <int N, typename T>
void sum_rows_impl(float* out, const T* x, int64_t rows, int64_t cols, bool accumulate, cudaStream_t stream) {
  auto kernel = column_sum_kernel<N, T>;
  const int threads = kColThreadsX * kColThreadsY;
  const int64_t blocks_x = ceil_div(cols, int64_t(kColThreadsX) * N);
  MODA_CHECK(blocks_x < (int64_t(1) << 31), "sum_rows: cols=", cols, " too large");
  const int64_t resident = resident_grid(kernel, threads, 0, int64_t(1) << 40);
  // Enough row chunks to fill the device, each at least 64 rows long.
  const int64_t chunks =
      std::max<int64_t>(1, std::min({ceil_div(resident, blocks_x), ceil_div(rows, 64), int64_t(65535)}));
  const int64_t rows_per_chunk = ceil_div(rows, chunks);
  const dim3 block(kColThreadsX, kColThreadsY);
  const dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(chunks));
  if (chunks == 1) {
    kernel<<<grid, block, 0, stream>>>(out, x, rows, cols, rows_per_chunk, accumulate);
    check_launch("sum_rows");
    return;
  }
  DeviceScratch partials(size_t(chunks) * cols * sizeof(float), stream);
  float* p = static_cast<float*>(partials.ptr);
  kernel<<<grid, block, 0, stream>>>(p, x, rows, cols, rows_per_chunk, false);
  check_launch("sum_rows");
  sum_rows<float>(out, p, chunks, cols, accumulate, stream);  // chunks <= rows / 64: terminates
}

}  // namespace

template <typename T>
void sum(float* out, const T* x, int64_t n, cudaStream_t stream) {
  MODA_CHECK(n >= 0, "sum: negative element count ", n);
  if (n == 0) {
    MODA_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float), stream), "sum");
    return;
  }
  sum_dispatch(out, x, n, 1.0, stream, "sum");
}

template <typename T>
void mean(float* out, const T* x, int64_t n, cudaStream_t stream) {
  MODA_CHECK(n > 0, "mean: needs at least one element, got n=", n);
  sum_dispatch(out, x, n, 1.0 / static_cast<double>(n), stream, "mean");
}

template <typename T>
void sum_rows(float* out, const T* x, int64_t rows, int64_t cols, bool accumulate, cudaStream_t stream) {
  MODA_CHECK(rows >= 0 && cols >= 0, "sum_rows: negative shape [", rows, ", ", cols, "]");
  if (cols == 0) return;
  if (rows == 0) {
    if (!accumulate) MODA_CUDA_CHECK(cudaMemsetAsync(out, 0, cols * sizeof(float), stream), "sum_rows");
    return;
  }
  constexpr int N = vec_width<T>();
  if (cols % N == 0 && aligned16(x))
    sum_rows_impl<N>(out, x, rows, cols, accumulate, stream);
  else
    sum_rows_impl<1>(out, x, rows, cols, accumulate, stream);
}

template void sum<float>(float*, const float*, int64_t, cudaStream_t);
template void sum<bf16>(float*, const bf16*, int64_t, cudaStream_t);
template void mean<float>(float*, const float*, int64_t, cudaStream_t);
template void mean<bf16>(float*, const bf16*, int64_t, cudaStream_t);
template void sum_rows<float>(float*, const float*, int64_t, int64_t, bool, cudaStream_t);
template void sum_rows<bf16>(float*, const bf16*, int64_t, int64_t, bool, cudaStream_t);

}  // namespace moda::cuda
