#include "kernels/cuda/rope.h"

#include "kernels/cuda/elementwise.cuh"

namespace moda::cuda {
namespace {

using namespace detail;

constexpr int kHeadsPerStep = 4;  // heads whose loads are issued together (memory-level parallelism)

struct RopeArgs {
  RopeStrides os, is;
  int64_t batch, tokens, heads, half, chunks;  // chunks = half / N
  int64_t pos_offset;
  double neg_log2_theta_over_half;  // inv_freq(i) = 2^(i * this)
  float sign;                       // +1 forward, -1 backward
};

// Thread = (b, t, chunk of N pairs); it loops over all heads.
template <typename T, int N>
__global__ void rope_kernel(T* out, const T* in, RopeArgs a) {
  const int64_t total = a.batch * a.tokens * a.chunks;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; item < total; item += stride) {
    const int64_t j = item % a.chunks, bt = item / a.chunks;
    const int64_t t = bt % a.tokens, b = bt / a.tokens;
    const double pos = double(t + a.pos_offset);
    float c[N], s[N];
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const double angle = pos * exp2(double(j * N + k) * a.neg_log2_theta_over_half);
      const double turns = rint(angle * 0.15915494309189535);  // 1 / (2 pi)
      const float reduced = float(fma(-turns, 6.283185307179586, angle));
      __sincosf(reduced, &s[k], &c[k]);  // abs. error ~4e-7 on [-pi, pi]
      s[k] *= a.sign;
    }
    const T* src = in + b * a.is.batch + t * a.is.token + j * N;
    T* dst = out + b * a.os.batch + t * a.os.token + j * N;
    for (int64_t h0 = 0; h0 < a.heads; h0 += kHeadsPerStep) {
      float x1[kHeadsPerStep][N], x2[kHeadsPerStep][N];
#pragma unroll
      for (int u = 0; u < kHeadsPerStep; ++u)  // all loads first: also what makes in-place safe
        if (h0 + u < a.heads) {
          load_vec<T, N>(src + (h0 + u) * a.is.head, x1[u]);
          load_vec<T, N>(src + (h0 + u) * a.is.head + a.half, x2[u]);
        }
#pragma unroll
      for (int u = 0; u < kHeadsPerStep; ++u)
        if (h0 + u < a.heads) {
          float y1[N], y2[N];
#pragma unroll
          for (int k = 0; k < N; ++k) {
            y1[k] = x1[u][k] * c[k] - x2[u][k] * s[k];
            y2[k] = x2[u][k] * c[k] + x1[u][k] * s[k];
          }
          store_vec<T, N>(dst + (h0 + u) * a.os.head, y1);
          store_vec<T, N>(dst + (h0 + u) * a.os.head + a.half, y2);
        }
    }
  }
}

template <typename T, int N>
void launch(T* out, const T* in, RopeArgs a, cudaStream_t stream, const char* op) {
  a.chunks = a.half / N;
  constexpr int threads = 256;
  auto kernel = rope_kernel<T, N>;
  const int grid = resident_grid(kernel, threads, 0, ceil_div(a.batch * a.tokens * a.chunks, threads));
  kernel<<<grid, threads, 0, stream>>>(out, in, a);
  check_launch(op);
}

template <typename T>
void rope(T* out, RopeStrides os, const T* in, RopeStrides is, const RopeShape& s, float sign, cudaStream_t stream,
          const char* op) {
  MODA_CHECK(s.batch >= 0 && s.tokens >= 0 && s.heads >= 0, op, ": negative size (batch=", s.batch,
             ", tokens=", s.tokens, ", heads=", s.heads, ")");
  MODA_CHECK(s.head_dim > 0 && s.head_dim % 2 == 0, op, ": head_dim must be positive and even, got ", s.head_dim);
  MODA_CHECK(s.theta > 0, op, ": theta must be positive, got ", s.theta);
  if (s.batch == 0 || s.tokens == 0 || s.heads == 0) return;
  RopeArgs a{os,       is,           s.batch,
             s.tokens, s.heads,      s.head_dim / 2,
             0,        s.pos_offset, -std::log2(s.theta) / double(s.head_dim / 2),
             sign};
  constexpr int N = vec_width<T>();
  const bool vec = a.half % N == 0 && aligned16(out) && aligned16(in) && os.batch % N == 0 && os.token % N == 0 &&
                   os.head % N == 0 && is.batch % N == 0 && is.token % N == 0 && is.head % N == 0;
  if (vec)
    launch<T, N>(out, in, a, stream, op);
  else
    launch<T, 1>(out, in, a, stream, op);
}

}  // namespace

template <typename T>
void rope_forward(T* out, RopeStrides out_strides, const T* in, RopeStrides in_strides, const RopeShape& shape,
                  cudaStream_t stream) {
  rope(out, out_strides, in, in_strides, shape, 1.0f, stream, "rope_forward");
}

template <typename T>
void rope_backward(T* dx, RopeStrides dx_strides, const T* dy, RopeStrides dy_strides, const RopeShape& shape,
                   cudaStream_t stream) {
  rope(dx, dx_strides, dy, dy_strides, shape, -1.0f, stream, "rope_backward");
}

template void rope_forward<float>(float*, RopeStrides, const float*, RopeStrides, const RopeShape&, cudaStream_t);
template void rope_forward<bf16>(bf16*, RopeStrides, const bf16*, RopeStrides, const RopeShape&, cudaStream_t);
template void rope_backward<float>(float*, RopeStrides, const float*, RopeStrides, const RopeShape&, cudaStream_t);
template void rope_backward<bf16>(bf16*, RopeStrides, const bf16*, RopeStrides, const RopeShape&, cudaStream_t);

}  // namespace moda::cuda
