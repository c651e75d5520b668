#include "kernels/cuda/swiglu.h"

#include "kernels/cuda/elementwise.cuh"

namespace moda::cuda {
namespace {

using namespace detail;

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + __expf(-g)); }

// Grid-stride over (row, column vector) pairs. The row/column of the next item are advanced
// incrementally, which avoids a 64-bit division per item.
struct Cursor {
  int64_t row, col;
  int64_t step_rows, step_cols;
  __device__ Cursor(int64_t first, int64_t stride, int64_t nv)
      : row(first / nv), col(first % nv), step_rows(stride / nv), step_cols(stride % nv) {}
  __device__ void advance(int64_t nv) {
    row += step_rows;
    col += step_cols;
    if (col >= nv) col -= nv, ++row;
  }
};

template <typename T, int N>
__global__ void swiglu_forward_kernel(T* out, const T* in, int64_t rows, int64_t hidden) {
  const int64_t nv = hidden / N;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (Cursor p(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride, nv); p.row < rows; p.advance(nv)) {
    const T* gate = in + p.row * 2 * hidden + p.col * N;
    float g[N], u[N], o[N];
    load_vec<T, N>(gate, g);
    load_vec<T, N>(gate + hidden, u);
#pragma unroll
    for (int k = 0; k < N; ++k) o[k] = g[k] * sigmoid(g[k]) * u[k];
    store_vec<T, N>(out + p.row * hidden + p.col * N, o);
  }
}

template <typename T, int N>
__global__ void swiglu_backward_kernel(T* d_in, const T* d_out, const T* in, int64_t rows, int64_t hidden) {
  const int64_t nv = hidden / N;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (Cursor p(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride, nv); p.row < rows; p.advance(nv)) {
    const int64_t at = p.row * 2 * hidden + p.col * N;
    float g[N], u[N], d[N], dg[N], du[N];
    load_vec<T, N>(in + at, g);
    load_vec<T, N>(in + at + hidden, u);
    load_vec<T, N>(d_out + p.row * hidden + p.col * N, d);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float s = sigmoid(g[k]);
      dg[k] = d[k] * u[k] * s * (1.0f + g[k] * (1.0f - s));
      du[k] = d[k] * g[k] * s;
    }
    store_vec<T, N>(d_in + at, dg);
    store_vec<T, N>(d_in + at + hidden, du);
  }
}

template <typename Kernel, typename... Args>
void launch(Kernel kernel, int64_t items, cudaStream_t stream, const char* op, Args... args) {
  constexpr int threads = 256;
  const int grid = resident_grid(kernel, threads, 0, ceil_div(items, threads));
  kernel<<<grid, threads, 0, stream>>>(args...);
  check_launch(op);
}

void check_shape(const char* op, int64_t rows, int64_t hidden) {
  MODA_CHECK(rows >= 0 && hidden >= 0, op, ": negative shape rows=", rows, ", hidden=", hidden);
}

}  // namespace

template <typename T>
void swiglu_forward(T* out, const T* in, int64_t rows, int64_t hidden, cudaStream_t stream) {
  check_shape("swiglu_forward", rows, hidden);
  if (rows == 0 || hidden == 0) return;
  constexpr int N = vec_width<T>();
  if (hidden % N == 0 && aligned16(out) && aligned16(in))
    launch(swiglu_forward_kernel<T, N>, rows * (hidden / N), stream, "swiglu_forward", out, in, rows, hidden);
  else
    launch(swiglu_forward_kernel<T, 1>, rows * hidden, stream, "swiglu_forward", out, in, rows, hidden);
}

template <typename T>
void swiglu_backward(T* d_in, const T* d_out, const T* in, int64_t rows, int64_t hidden, cudaStream_t stream) {
  check_shape("swiglu_backward", rows, hidden);
  if (rows == 0 || hidden == 0) return;
  constexpr int N = vec_width<T>();
  if (hidden % N == 0 && aligned16(d_in) && aligned16(d_out) && aligned16(in))
    launch(swiglu_backward_kernel<T, N>, rows * (hidden / N), stream, "swiglu_backward", d_in, d_out, in, rows, hidden);
  else
    launch(swiglu_backward_kernel<T, 1>, rows * hidden, stream, "swiglu_backward", d_in, d_out, in, rows, hidden);
}

template void swiglu_forward<float>(float*, const float*, int64_t, int64_t, cudaStream_t);
template void swiglu_forward<bf16>(bf16*, const bf16*, int64_t, int64_t, cudaStream_t);
template void swiglu_backward<float>(float*, const float*, const float*, int64_t, int64_t, cudaStream_t);
template void swiglu_backward<bf16>(bf16*, const bf16*, const bf16*, int64_t, int64_t, cudaStream_t);

}  // namespace moda::cuda
