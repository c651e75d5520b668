#include "kernels/cuda/elementwise.h"

#include "kernels/cuda/elementwise.cuh"

namespace moda::cuda {
namespace {

using namespace detail;

// out[i] = f(a[i], b[i]) for NIN inputs (unused inputs read as 0). Grid-stride over N-element
// vectors; the n % N tail is done element-wise by the first threads.
template <int N, int NIN, typename TO, typename TA, typename TB, typename F>
__global__ void map_kernel(TO* out, const TA* a, const TB* b, int64_t n, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / N;
  for (int64_t i = first; i < nvec; i += stride) {
    float va[N] = {}, vb[N] = {}, vo[N];
    if constexpr (NIN >= 1) load_vec<TA, N>(a + i * N, va);
    if constexpr (NIN >= 2) load_vec<TB, N>(b + i * N, vb);
#pragma unroll
    for (int k = 0; k < N; ++k) vo[k] = f(va[k], vb[k]);
    store_vec<TO, N>(out + i * N, vo);
  }
  for (int64_t i = nvec * N + first; i < n; i += stride) {
    const float x = NIN >= 1 ? load1(a + i) : 0.0f;
    const float y = NIN >= 2 ? load1(b + i) : 0.0f;
    store1(out + i, f(x, y));
  }
}

template <int N, int NIN, typename TO, typename TA, typename TB, typename F>
void launch_n(TO* out, const TA* a, const TB* b, int64_t n, F f, cudaStream_t stream, const char* op) {
  constexpr int threads = 256;
  auto kernel = map_kernel<N, NIN, TO, TA, TB, F>;
  const int grid = resident_grid(kernel, threads, 0, ceil_div(ceil_div(n, N), threads));
  kernel<<<grid, threads, 0, stream>>>(out, a, b, n, f);
  check_launch(op);
}

template <int NIN, typename TO, typename TA, typename TB, typename F>
void launch_map(TO* out, const TA* a, const TB* b, int64_t n, F f, cudaStream_t stream, const char* op) {
  MODA_CHECK(n >= 0, op, ": negative element count ", n);
  if (n == 0) return;
  constexpr size_t smallest =
      std::min({sizeof(TO), NIN >= 1 ? sizeof(TA) : sizeof(TO), NIN >= 2 ? sizeof(TB) : sizeof(TO)});
  constexpr int N = 16 / int(smallest);
  const bool vec = aligned16(out) && (NIN < 1 || aligned16(a)) && (NIN < 2 || aligned16(b));
  if (vec)
    launch_n<N, NIN>(out, a, b, n, f, stream, op);
  else
    launch_n<1, NIN>(out, a, b, n, f, stream, op);
}

struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Mul {
  __device__ float operator()(float a, float b) const { return a * b; }
};
struct Scale {
  float alpha;
  __device__ float operator()(float a, float) const { return alpha * a; }
};
struct Axpy {
  float alpha;
  __device__ float operator()(float y, float x) const { return fmaf(alpha, x, y); }
};
struct Fill {
  float value;
  __device__ float operator()(float, float) const { return value; }
};
struct FillFrom {
  const float* value;
  float scale;
  __device__ float operator()(float, float) const { return scale * *value; }
};
struct Copy {
  __device__ float operator()(float a, float) const { return a; }
};

}  // namespace

template <typename T>
void add(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  launch_map<2>(out, a, b, n, Add{}, stream, "add");
}

template <typename T>
void mul(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  launch_map<2>(out, a, b, n, Mul{}, stream, "mul");
}

template <typename T>
void scale(T* out, const T* a, double alpha, int64_t n, cudaStream_t stream) {
  launch_map<1>(out, a, a, n, Scale{float(alpha)}, stream, "scale");
}

template <typename TY, typename TX>
void axpy(TY* y, const TX* x, double alpha, int64_t n, cudaStream_t stream) {
  launch_map<2>(y, static_cast<const TY*>(y), x, n, Axpy{float(alpha)}, stream, "axpy");
}

template <typename T>
void fill(T* out, double value, int64_t n, cudaStream_t stream) {
  launch_map<0>(out, static_cast<const T*>(out), static_cast<const T*>(out), n, Fill{float(value)}, stream, "fill");
}

template <typename T>
void fill(T* out, const float* value, double scale, int64_t n, cudaStream_t stream) {
  launch_map<0>(out, static_cast<const T*>(out), static_cast<const T*>(out), n, FillFrom{value, float(scale)}, stream,
                "fill (device scalar)");
}

void cast(bf16* out, const float* in, int64_t n, cudaStream_t stream) {
  launch_map<1>(out, in, in, n, Copy{}, stream, "cast f32->bf16");
}

void cast(float* out, const bf16* in, int64_t n, cudaStream_t stream) {
  launch_map<1>(out, in, in, n, Copy{}, stream, "cast bf16->f32");
}

#define MODA_INSTANTIATE(T)                                            \
  template void add<T>(T*, const T*, const T*, int64_t, cudaStream_t); \
  template void mul<T>(T*, const T*, const T*, int64_t, cudaStream_t); \
  template void scale<T>(T*, const T*, double, int64_t, cudaStream_t); \
  template void fill<T>(T*, double, int64_t, cudaStream_t);            \
  template void fill<T>(T*, const float*, double, int64_t, cudaStream_t);
MODA_INSTANTIATE(float)
MODA_INSTANTIATE(bf16)
#undef MODA_INSTANTIATE
template void axpy<float, float>(float*, const float*, double, int64_t, cudaStream_t);
template void axpy<float, bf16>(float*, const bf16*, double, int64_t, cudaStream_t);
template void axpy<bf16, bf16>(bf16*, const bf16*, double, int64_t, cudaStream_t);

}  // namespace moda::cuda
