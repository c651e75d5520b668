#include "kernels/cuda/rmsnorm.h"

#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/reduce.h"

namespace moda::cuda {
namespace {

using namespace detail;

template <typename T, int N, int MaxThreads>
__global__ void __launch_bounds__(MaxThreads)
    rmsnorm_forward_kernel(T* y, float* rstd, const T* x, const T* w, int64_t rows, int64_t cols, int G, float eps) {
  constexpr int C = kRowElemsPerThread / N;
  __shared__ float scratch[32];
  const int gpb = blockDim.x / G, group = threadIdx.x / G, lane = threadIdx.x % G;
  const int64_t nvec = cols / N;
  const float inv_cols = 1.0f / float(cols);
  float wv[C][N];
  load_row<T, N, C>(wv, w, nvec, G, lane, w != nullptr, 1.0f);  // the same columns for every row
  for (int64_t base = int64_t(blockIdx.x) * gpb; base < rows; base += int64_t(gridDim.x) * gpb) {
    const int64_t row = base + group;
    const bool valid = row < rows;
    float xv[C][N];
    load_row<T, N, C>(xv, x + row * cols, nvec, G, lane, valid, 0.0f);
    float ss = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int k = 0; k < N; ++k) ss = fmaf(xv[c][k], xv[c][k], ss);
    ss = group_reduce(ss, G, scratch, SumOp{});
    const float r = rsqrtf(ss * inv_cols + eps);
    if (!valid) continue;
    if (lane == 0 && rstd) rstd[row] = r;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t idx = int64_t(c) * G + lane;
      if (idx >= nvec) continue;
      float o[N];
#pragma unroll
      for (int k = 0; k < N; ++k) o[k] = xv[c][k] * r * wv[c][k];
      store_vec<T, N>(y + row * cols + idx * N, o);
    }
  }
}

// dw_partial: [gridDim.x, cols], one row of partial weight-gradient sums per block (null: no dw).
// Each thread owns fixed columns, so its dw sums stay in registers across rows; groups of one block
// are combined in shared memory in a fixed order.
template <typename T, int N, int MaxThreads>
__global__ void __launch_bounds__(MaxThreads)
    rmsnorm_backward_kernel(T* dx, float* dw_partial, const T* dy, const T* x, const T* w, const float* rstd,
                            int64_t rows, int64_t cols, int G) {
  constexpr int C = kRowElemsPerThread / N;
  extern __shared__ float smem[];  // [32] reduction scratch, then [gpb][cols] dw partials if gpb > 1
  const int gpb = blockDim.x / G, group = threadIdx.x / G, lane = threadIdx.x % G;
  const int64_t nvec = cols / N;
  const float inv_cols = 1.0f / float(cols);
  float dwacc[C][N] = {};
  for (int64_t base = int64_t(blockIdx.x) * gpb; base < rows; base += int64_t(gridDim.x) * gpb) {
    const int64_t row = base + group;
    const bool valid = row < rows;
    float xv[C][N], gv[C][N], wv[C][N];  // w is re-read per row (an L1 hit): fewer registers, more warps
    load_row<T, N, C>(xv, x + row * cols, nvec, G, lane, valid, 0.0f);
    load_row<T, N, C>(gv, dy + row * cols, nvec, G, lane, valid, 0.0f);
    load_row<T, N, C>(wv, w, nvec, G, lane, w != nullptr, 1.0f);
    const float r = valid ? rstd[row] : 0.0f;
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int k = 0; k < N; ++k) s = fmaf(gv[c][k] * wv[c][k], xv[c][k], s);
    s = group_reduce(s, G, smem, SumOp{});
    const float kx = r * r * r * s * inv_cols;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t idx = int64_t(c) * G + lane;
      float o[N];
#pragma unroll
      for (int k = 0; k < N; ++k) {
        o[k] = r * wv[c][k] * gv[c][k] - xv[c][k] * kx;
        dwacc[c][k] = fmaf(gv[c][k] * xv[c][k], r, dwacc[c][k]);  // invalid rows add 0
      }
      if (valid && dx && idx < nvec) store_vec<T, N>(dx + row * cols + idx * N, o);
    }
  }
  if (!dw_partial) return;
  float* out = dw_partial + int64_t(blockIdx.x) * cols;
  if (gpb == 1) {
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t idx = int64_t(c) * G + lane;
      if (idx < nvec)
#pragma unroll
        for (int k = 0; k < N; ++k) out[idx * N + k] = dwacc[c][k];
    }
    return;
  }
  float* acc = smem + 32;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int64_t idx = int64_t(c) * G + lane;
    if (idx < nvec)
#pragma unroll
      for (int k = 0; k < N; ++k) acc[group * cols + idx * N + k] = dwacc[c][k];
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float t = 0.0f;
    for (int g = 0; g < gpb; ++g) t += acc[g * cols + j];
    out[j] = t;
  }
}

template <typename T>
bool row_vectorizable(int64_t cols, std::initializer_list<const void*> ptrs) {
  if (cols % vec_width<T>() != 0) return false;
  for (const void* p : ptrs)
    if (p && !aligned16(p)) return false;
  return true;
}

// Blocks of 1024 threads (rows longer than 8192 elements) need the kernel compiled for 64
// registers per thread; every other size gets the 512-thread variant, which is not register-capped.
template <typename T, int N, int MaxThreads>
void forward_launch(const RowLayout& l, T* y, float* rstd, const T* x, const T* w, int64_t rows, int64_t cols,
                    float eps, cudaStream_t stream) {
  auto kernel = rmsnorm_forward_kernel<T, N, MaxThreads>;
  const int grid = resident_grid(kernel, l.threads, 0, ceil_div(rows, l.groups_per_block));
  kernel<<<grid, l.threads, 0, stream>>>(y, rstd, x, w, rows, cols, l.G, eps);
  check_launch("rmsnorm_forward");
}

template <typename T, int N>
void forward_impl(T* y, float* rstd, const T* x, const T* w, int64_t rows, int64_t cols, float eps,
                  cudaStream_t stream) {
  const RowLayout l = row_layout(cols, N, "rmsnorm_forward");
  if (l.threads > 512)
    forward_launch<T, N, 1024>(l, y, rstd, x, w, rows, cols, eps, stream);
  else
    forward_launch<T, N, 512>(l, y, rstd, x, w, rows, cols, eps, stream);
}

template <typename T, int N, int MaxThreads>
void backward_launch(const RowLayout& l, T* dx, float* dw, const T* dy, const T* x, const T* w, const float* rstd,
                     int64_t rows, int64_t cols, bool accumulate_dw, cudaStream_t stream) {
  auto kernel = rmsnorm_backward_kernel<T, N, MaxThreads>;
  const size_t smem = (32 + (dw && l.groups_per_block > 1 ? size_t(l.groups_per_block) * cols : 0)) * sizeof(float);
  const int grid = resident_grid(kernel, l.threads, smem, ceil_div(rows, l.groups_per_block));
  if (!dw) {
    kernel<<<grid, l.threads, smem, stream>>>(dx, nullptr, dy, x, w, rstd, rows, cols, l.G);
    check_launch("rmsnorm_backward");
    return;
  }
  DeviceScratch partials(size_t(grid) * cols * sizeof(float), stream);
  kernel<<<grid, l.threads, smem, stream>>>(dx, partials.as<float>(), dy, x, w, rstd, rows, cols, l.G);
  check_launch("rmsnorm_backward");
  sum_rows<float>(dw, partials.as<float>(), grid, cols, accumulate_dw, stream);
}

template <typename T, int N>
void backward_impl(T* dx, float* dw, const T* dy, const T* x, const T* w, const float* rstd, int64_t rows, int64_t cols,
                   bool accumulate_dw, cudaStream_t stream) {
  const RowLayout l = row_layout(cols, N, "rmsnorm_backward");
  if (l.threads > 512)
    backward_launch<T, N, 1024>(l, dx, dw, dy, x, w, rstd, rows, cols, accumulate_dw, stream);
  else
    backward_launch<T, N, 512>(l, dx, dw, dy, x, w, rstd, rows, cols, accumulate_dw, stream);
}

}  // namespace

template <typename T>
void rmsnorm_forward(T* y, float* rstd, const T* x, const T* w, int64_t rows, int64_t cols, double eps,
                     cudaStream_t stream) {
  MODA_CHECK(rows >= 0, "rmsnorm_forward: negative rows ", rows);
  row_layout(cols, 1, "rmsnorm_forward");  // validates cols
  if (rows == 0) return;
  if (row_vectorizable<T>(cols, {y, x, w}))
    forward_impl<T, vec_width<T>()>(y, rstd, x, w, rows, cols, float(eps), stream);
  else
    forward_impl<T, 1>(y, rstd, x, w, rows, cols, float(eps), stream);
}

template <typename T>
void rmsnorm_backward(T* dx, float* dw, const T* dy, const T* x, const T* w, const float* rstd, int64_t rows,
                      int64_t cols, bool accumulate_dw, cudaStream_t stream) {
  MODA_CHECK(rows >= 0, "rmsnorm_backward: negative rows ", rows);
  row_layout(cols, 1, "rmsnorm_backward");
  if (rows == 0) {
    if (dw && !accumulate_dw) MODA_CUDA_CHECK(cudaMemsetAsync(dw, 0, cols * sizeof(float), stream), "rmsnorm_backward");
    return;
  }
  if (row_vectorizable<T>(cols, {dx, dy, x, w}))
    backward_impl<T, vec_width<T>()>(dx, dw, dy, x, w, rstd, rows, cols, accumulate_dw, stream);
  else
    backward_impl<T, 1>(dx, dw, dy, x, w, rstd, rows, cols, accumulate_dw, stream);
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, double,
                                     cudaStream_t);
template void rmsnorm_forward<bf16>(bf16*, float*, const bf16*, const bf16*, int64_t, int64_t, double, cudaStream_t);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*, int64_t,
                                      int64_t, bool, cudaStream_t);
template void rmsnorm_backward<bf16>(bf16*, float*, const bf16*, const bf16*, const bf16*, const float*, int64_t,
                                     int64_t, bool, cudaStream_t);

}  // namespace moda::cuda
