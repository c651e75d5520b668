#include "kernels/cuda/softmax.h"

#include "kernels/cuda/elementwise.cuh"

namespace moda::cuda {
namespace {

using namespace detail;

template <typename T, int N, int MaxThreads>
__global__ void __launch_bounds__(MaxThreads)
    softmax_forward_kernel(T* y, const T* x, int64_t rows, int64_t cols, int G) {
  constexpr int C = kRowElemsPerThread / N;
  __shared__ float scratch[32];
  const int gpb = blockDim.x / G, group = threadIdx.x / G, lane = threadIdx.x % G;
  const int64_t nvec = cols / N;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t base = int64_t(blockIdx.x) * gpb; base < rows; base += int64_t(gridDim.x) * gpb) {
    const int64_t row = base + group;
    const bool valid = row < rows;
    float v[C][N];
    load_row<T, N, C>(v, x + row * cols, nvec, G, lane, valid, neg_inf);  // padding: exp(-inf) = 0
    float m = neg_inf;
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int k = 0; k < N; ++k) m = fmaxf(m, v[c][k]);
    m = group_reduce(m, G, scratch, MaxOp{});
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int k = 0; k < N; ++k) {
        v[c][k] = __expf(v[c][k] - m);
        s += v[c][k];
      }
    s = group_reduce(s, G, scratch, SumOp{});
    if (!valid) continue;
    const float inv = 1.0f / s;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t idx = int64_t(c) * G + lane;
      if (idx >= nvec) continue;
#pragma unroll
      for (int k = 0; k < N; ++k) v[c][k] *= inv;
      store_vec<T, N>(y + row * cols + idx * N, v[c]);
    }
  }
}

template <typename T, int N, int MaxThreads>
__global__ void __launch_bounds__(MaxThreads)
    softmax_backward_kernel(T* dx, const T* y, const T* dy, int64_t rows, int64_t cols, int G) {
  constexpr int C = kRowElemsPerThread / N;
  __shared__ float scratch[32];
  const int gpb = blockDim.x / G, group = threadIdx.x / G, lane = threadIdx.x % G;
  const int64_t nvec = cols / N;
  for (int64_t base = int64_t(blockIdx.x) * gpb; base < rows; base += int64_t(gridDim.x) * gpb) {
    const int64_t row = base + group;
    const bool valid = row < rows;
    float yv[C][N], gv[C][N];
    load_row<T, N, C>(yv, y + row * cols, nvec, G, lane, valid, 0.0f);
    load_row<T, N, C>(gv, dy + row * cols, nvec, G, lane, valid, 0.0f);
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int k = 0; k < N; ++k) s = fmaf(yv[c][k], gv[c][k], s);
    s = group_reduce(s, G, scratch, SumOp{});
    if (!valid) continue;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t idx = int64_t(c) * G + lane;
      if (idx >= nvec) continue;
      float o[N];
#pragma unroll
      for (int k = 0; k < N; ++k) o[k] = yv[c][k] * (gv[c][k] - s);
      store_vec<T, N>(dx + row * cols + idx * N, o);
    }
  }
}

template <typename T>
bool vectorizable(int64_t cols, const void* a, const void* b, const void* c) {
  return cols % vec_width<T>() == 0 && aligned16(a) && aligned16(b) && aligned16(c);
}

template <int N, typename Kernel, typename... Args>
void launch_rows(Kernel kernel, const RowLayout& l, int64_t rows, int64_t cols, cudaStream_t stream, const char* op,
                 Args... args) {
  const int grid = resident_grid(kernel, l.threads, 0, ceil_div(rows, l.groups_per_block));
  kernel<<<grid, l.threads, 0, stream>>>(args..., rows, cols, l.G);
  check_launch(op);
}

// Blocks of 1024 threads (rows longer than 8192 elements) need the kernels compiled for 64
// registers per thread; every other size gets the 512-thread variant, which is not register-capped.
template <typename T, int N>
void forward_impl(T* y, const T* x, int64_t rows, int64_t cols, cudaStream_t stream) {
  const RowLayout l = row_layout(cols, N, "softmax_forward");
  if (l.threads > 512)
    launch_rows<N>(softmax_forward_kernel<T, N, 1024>, l, rows, cols, stream, "softmax_forward", y, x);
  else
    launch_rows<N>(softmax_forward_kernel<T, N, 512>, l, rows, cols, stream, "softmax_forward", y, x);
}

template <typename T, int N>
void backward_impl(T* dx, const T* y, const T* dy, int64_t rows, int64_t cols, cudaStream_t stream) {
  const RowLayout l = row_layout(cols, N, "softmax_backward");
  if (l.threads > 512)
    launch_rows<N>(softmax_backward_kernel<T, N, 1024>, l, rows, cols, stream, "softmax_backward", dx, y, dy);
  else
    launch_rows<N>(softmax_backward_kernel<T, N, 512>, l, rows, cols, stream, "softmax_backward", dx, y, dy);
}

}  // namespace

template <typename T>
void softmax_forward(T* y, const T* x, int64_t rows, int64_t cols, cudaStream_t stream) {
  MODA_CHECK(rows >= 0, "softmax_forward: negative rows ", rows);
  row_layout(cols, 1, "softmax_forward");
  if (rows == 0) return;
  constexpr int N = vec_width<T>();
  if (vectorizable<T>(cols, y, x, x))
    forward_impl<T, N>(y, x, rows, cols, stream);
  else
    forward_impl<T, 1>(y, x, rows, cols, stream);
}

template <typename T>
void softmax_backward(T* dx, const T* y, const T* dy, int64_t rows, int64_t cols, cudaStream_t stream) {
  MODA_CHECK(rows >= 0, "softmax_backward: negative rows ", rows);
  row_layout(cols, 1, "softmax_backward");
  if (rows == 0) return;
  constexpr int N = vec_width<T>();
  if (vectorizable<T>(cols, dx, y, dy))
    backward_impl<T, N>(dx, y, dy, rows, cols, stream);
  else
    backward_impl<T, 1>(dx, y, dy, rows, cols, stream);
}

template void softmax_forward<float>(float*, const float*, int64_t, int64_t, cudaStream_t);
template void softmax_forward<bf16>(bf16*, const bf16*, int64_t, int64_t, cudaStream_t);
template void softmax_backward<float>(float*, const float*, const float*, int64_t, int64_t, cudaStream_t);
template void softmax_backward<bf16>(bf16*, const bf16*, const bf16*, int64_t, int64_t, cudaStream_t);

}  // namespace moda::cuda
