// `moda bench ops`: bandwidth of the memory-bound kernels against the device's copy bandwidth.
// On a GPU: first a 1 GiB cudaMemcpyAsync device-to-device copy (bytes read + written / time) is
// the reference; then every op at sizes of >= 256 MB of traffic is timed with CUDA events (warm-up,
// median of --iters runs) and reported as GB/s and as a fraction of the copy. "Bytes" count the
// minimum traffic of the op (each input read once, each output written once). The bf16 GEMM is
// reported in TFLOP/s. Without a GPU the CPU reference kernels are timed at smaller sizes, so the
// command works on any machine.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/exit_codes.h"
#include "core/bf16.h"
#include "core/device.h"
#include "core/error.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cpu/swiglu.h"
#ifdef MODA_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/softmax.h"
#include "kernels/cuda/swiglu.h"
#endif

namespace moda::app {
namespace {

// One benchmark: what it is, how much traffic (or work) one run moves, and the run itself.
// Buffers live in `keep` so they are freed as soon as the case has been measured.
struct Case {
  std::string op, dtype, shape;
  double bytes = 0;  // minimum bytes read + written by one run
  double flops = 0;  // GEMM only
  std::function<void()> run;
  std::vector<std::shared_ptr<void>> keep;
};
using CaseFactory = std::function<Case()>;

struct Result {
  Case c;
  double ms = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string shape_of(std::initializer_list<int64_t> dims) {
  std::string s = "[";
  for (int64_t d : dims) s += (s.size() > 1 ? ", " : "") + std::to_string(d);
  return s + "]";
}

bool wanted(const std::vector<std::string>& filter, const std::string& op) {
  if (filter.empty()) return true;
  for (const auto& f : filter)
    if (op.find(f) != std::string::npos) return true;
  return false;
}

// ------------------------------------------------------------------------------------------------
// CPU: the reference kernels, so the command is useful (and testable) on any machine.

template <typename T>
std::shared_ptr<std::vector<T>> host(size_t n, T value) {
  return std::make_shared<std::vector<T>>(n, value);
}

double cpu_time_ms(const std::function<void()>& fn, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    auto a = std::chrono::steady_clock::now();
    fn();
    auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double, std::milli>(b - a).count());
  }
  return median(t);
}

std::vector<CaseFactory> cpu_cases(double scale) {
  const int64_t n = std::max<int64_t>(1024, int64_t(8 * 1024 * 1024 * scale));  // 8M elements
  const int64_t cols = 1024, rows = n / cols;
  std::vector<CaseFactory> f;
  f.push_back([=] {
    auto x = host<float>(n, 0.5f);
    auto y = host<bf16>(n, bf16{});
    return Case{
        "cast f32->bf16", "f32->bf16", shape_of({n}), 6.0 * n, 0, [=] { cpu::cast(y->data(), x->data(), n); }, {x, y}};
  });
  f.push_back([=] {
    auto x = host<float>(n, 0.5f), y = host<float>(n, 0.25f);
    return Case{"axpy", "f32", shape_of({n}), 12.0 * n, 0, [=] { cpu::axpy(y->data(), x->data(), 0.5, n); }, {x, y}};
  });
  f.push_back([=] {
    auto x = host<float>(n, 0.5f), out = host<float>(1, 0.f);
    return Case{"sum", "f32", shape_of({n}), 4.0 * n, 0, [=] { cpu::sum(out->data(), x->data(), n); }, {x, out}};
  });
  f.push_back([=] {
    auto x = host<float>(n, 0.5f), y = host<float>(n, 0.f), w = host<float>(cols, 1.f), r = host<float>(rows, 0.f);
    return Case{"rmsnorm fwd",
                "f32",
                shape_of({rows, cols}),
                8.0 * n,
                0,
                [=] { cpu::rmsnorm_forward(y->data(), r->data(), x->data(), w->data(), rows, cols, 1e-5); },
                {x, y, w, r}};
  });
  f.push_back([=] {
    auto x = host<float>(n, 0.5f), dy = host<float>(n, 0.1f), dx = host<float>(n, 0.f), w = host<float>(cols, 1.f),
         dw = host<float>(cols, 0.f), r = host<float>(rows, 1.f);
    return Case{
        "rmsnorm bwd",
        "f32",
        shape_of({rows, cols}),
        12.0 * n,
        0,
        [=] { cpu::rmsnorm_backward(dx->data(), dw->data(), dy->data(), x->data(), w->data(), r->data(), rows, cols); },
        {x, dy, dx, w, dw, r}};
  });
  f.push_back([=] {
    auto in = host<float>(2 * n, 0.5f), out = host<float>(n, 0.f);
    return Case{"swiglu fwd", "f32", shape_of({rows, 2 * cols}),
                12.0 * n,     0,     [=] { cpu::swiglu_forward(out->data(), in->data(), rows, cols); },
                {in, out}};
  });
  f.push_back([=] {
    auto in = host<float>(2 * n, 0.5f), d_out = host<float>(n, 0.1f), d_in = host<float>(2 * n, 0.f);
    return Case{
        "swiglu bwd",     "f32", shape_of({rows, 2 * cols}),
        20.0 * n,         0,     [=] { cpu::swiglu_backward(d_in->data(), d_out->data(), in->data(), rows, cols); },
        {in, d_out, d_in}};
  });
  f.push_back([=] {
    RopeShape s;
    s.batch = 1, s.heads = 8, s.head_dim = 128, s.tokens = n / (8 * 128);
    auto x = host<float>(n, 0.5f), y = host<float>(n, 0.f);
    const RopeStrides cs = RopeStrides::contiguous(s);
    return Case{"rope fwd", "f32", shape_of({s.batch, s.tokens, s.heads, s.head_dim}),
                8.0 * n,    0,     [=] { cpu::rope_forward(y->data(), cs, x->data(), cs, s); },
                {x, y}};
  });
  f.push_back([=] {
    auto x = host<float>(n, 0.5f), y = host<float>(n, 0.f);
    return Case{"softmax fwd", "f32", shape_of({rows, cols}),
                8.0 * n,       0,     [=] { cpu::softmax_forward(y->data(), x->data(), rows, cols); },
                {x, y}};
  });
  f.push_back([=] {
    auto p = host<float>(n, 0.5f), g = host<float>(n, 0.01f), m = host<float>(n, 0.f), v = host<float>(n, 0.f);
    AdamWParams hp;
    return Case{"adamw",     "f32", shape_of({n}),
                28.0 * n,    0,     [=] { cpu::adamw_step(hp, p->data(), g->data(), m->data(), v->data(), n); },
                {p, g, m, v}};
  });
  f.push_back([=] {
    const int64_t vocab = 8192, r = std::max<int64_t>(1, n / vocab);
    auto logits = host<float>(r * vocab, 0.5f), loss = host<float>(r, 0.f), lse = host<float>(r, 0.f),
         mean = host<float>(1, 0.f);
    auto tgt = host<int32_t>(r, 1);
    auto count = host<int64_t>(1, 0);
    return Case{"cross_entropy fwd",
                "f32",
                shape_of({r, vocab}),
                4.0 * r * vocab,
                0,
                [=] {
                  cpu::cross_entropy_forward(logits->data(), tgt->data(), loss->data(), lse->data(), mean->data(),
                                             count->data(), r, vocab);
                },
                {logits, loss, lse, mean, tgt, count}};
  });
  f.push_back([=] {
    const int64_t d = std::max<int64_t>(64, int64_t(1024 * std::cbrt(scale)));
    auto a = host<float>(d * d, 0.5f), b = host<float>(d * d, 0.5f), c = host<float>(d * d, 0.f);
    GemmDesc g;
    g.m = g.n = g.k = d;
    return Case{"gemm",       "f32",           shape_of({d, d, d}),
                12.0 * d * d, 2.0 * d * d * d, [=] { cpu::matmul(g, a->data(), b->data(), c->data()); },
                {a, b, c}};
  });
  return f;
}

double cpu_copy_gbs(double scale, int warmup, int iters) {
  const size_t bytes = std::max<size_t>(1 << 20, size_t(32.0 * (1 << 20) * scale));  // like the ops' arrays
  std::vector<char> a(bytes, 1), b(bytes, 0);
  const double ms = cpu_time_ms([&] { std::memcpy(b.data(), a.data(), bytes); }, warmup, iters);
  return 2.0 * bytes / (ms * 1e6);
}

// ------------------------------------------------------------------------------------------------
// GPU

#ifdef MODA_HAVE_CUDA
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) {
    MODA_CUDA_CHECK(cudaMalloc(&ptr, bytes), "buffer");
    MODA_CUDA_CHECK(cudaMemset(ptr, 0, bytes), "buffer");
  }
  ~DeviceBuffer() { cudaFree(ptr); }
};

template <typename T>
std::shared_ptr<DeviceBuffer> dev(size_t n, double value = 0.0) {
  auto b = std::make_shared<DeviceBuffer>(n * sizeof(T));
  if (value != 0.0) {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bf16>)
      cuda::fill(static_cast<T*>(b->ptr), value, n, nullptr);
  }
  return b;
}
template <typename T>
T* ptr(const std::shared_ptr<DeviceBuffer>& b) {
  return static_cast<T*>(b->ptr);
}

double gpu_time_ms(const std::function<void()>& fn, cudaStream_t stream, int warmup, int iters) {
  cudaEvent_t a, b;
  MODA_CUDA_CHECK(cudaEventCreate(&a), "bench ops");
  MODA_CUDA_CHECK(cudaEventCreate(&b), "bench ops");
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    MODA_CUDA_CHECK(cudaEventRecord(a, stream), "bench ops");
    fn();
    MODA_CUDA_CHECK(cudaEventRecord(b, stream), "bench ops");
    MODA_CUDA_CHECK(cudaEventSynchronize(b), "bench ops");
    float ms = 0;
    MODA_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b), "bench ops");
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(t);
}

double gpu_copy_gbs(int warmup, int iters) {
  const size_t bytes = size_t(1) << 30;
  DeviceBuffer a(bytes), b(bytes);
  const double ms = gpu_time_ms(
      [&] { MODA_CUDA_CHECK(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice, nullptr), "copy"); },
      nullptr, warmup, iters);
  return 2.0 * bytes / (ms * 1e6);
}

// Sizes: every memory-bound case moves >= 256 MB per run at scale 1.
std::vector<CaseFactory> gpu_cases(double scale) {
  const cudaStream_t s = nullptr;
  auto sz = [scale](int64_t v, int64_t align = 1) {
    return std::max<int64_t>(align, int64_t(v * scale) / align * align);
  };
  const int64_t n = sz(64 << 20, 1024);  // 64M elements
  std::vector<CaseFactory> f;

  f.push_back([=] {
    auto x = dev<float>(n, 0.5), y = dev<bf16>(n);
    return Case{"cast f32->bf16",
                "f32->bf16",
                shape_of({n}),
                6.0 * n,
                0,
                [=] { cuda::cast(ptr<bf16>(y), ptr<float>(x), n, s); },
                {x, y}};
  });
  f.push_back([=] {
    auto x = dev<bf16>(n, 0.5), y = dev<float>(n);
    return Case{"cast bf16->f32",
                "bf16->f32",
                shape_of({n}),
                6.0 * n,
                0,
                [=] { cuda::cast(ptr<float>(y), ptr<bf16>(x), n, s); },
                {x, y}};
  });
  f.push_back([=] {
    auto a = dev<bf16>(n, 0.5), b = dev<bf16>(n, 0.25), c = dev<bf16>(n);
    return Case{"add",    "bf16", shape_of({n}),
                6.0 * n,  0,      [=] { cuda::add(ptr<bf16>(c), ptr<bf16>(a), ptr<bf16>(b), n, s); },
                {a, b, c}};
  });
  f.push_back([=] {
    auto y = dev<float>(n, 0.5), x = dev<bf16>(n, 0.25);
    return Case{"axpy (f32 += bf16)",
                "f32+bf16",
                shape_of({n}),
                10.0 * n,
                0,
                [=] { cuda::axpy(ptr<float>(y), ptr<bf16>(x), 1e-3, n, s); },
                {y, x}};
  });
  f.push_back([=] {
    const int64_t m = 4 * n;
    auto x = dev<bf16>(m, 0.5), out = dev<float>(1);
    return Case{"sum",   "bf16", shape_of({m}), 2.0 * m, 0, [=] { cuda::sum(ptr<float>(out), ptr<bf16>(x), m, s); },
                {x, out}};
  });
  f.push_back([=] {
    const int64_t cols = 4096, rows = 4 * n / cols;
    auto x = dev<bf16>(rows * cols, 0.5), out = dev<float>(cols);
    return Case{"sum_rows (bias grad)",
                "bf16",
                shape_of({rows, cols}),
                2.0 * rows * cols,
                0,
                [=] { cuda::sum_rows(ptr<float>(out), ptr<bf16>(x), rows, cols, false, s); },
                {x, out}};
  });
  for (const int64_t cols : {int64_t(4096), int64_t(1024), int64_t(384)}) {
    const int64_t rows = 2 * n / cols;
    f.push_back([=] {
      auto x = dev<bf16>(rows * cols, 0.5), y = dev<bf16>(rows * cols), w = dev<bf16>(cols, 1.0), r = dev<float>(rows);
      return Case{
          "rmsnorm fwd",
          "bf16",
          shape_of({rows, cols}),
          4.0 * rows * cols + 4.0 * rows,
          0,
          [=] { cuda::rmsnorm_forward(ptr<bf16>(y), ptr<float>(r), ptr<bf16>(x), ptr<bf16>(w), rows, cols, 1e-5, s); },
          {x, y, w, r}};
    });
    f.push_back([=] {
      auto x = dev<bf16>(rows * cols, 0.5), dy = dev<bf16>(rows * cols, 0.1), dx = dev<bf16>(rows * cols),
           w = dev<bf16>(cols, 1.0), dw = dev<float>(cols), r = dev<float>(rows, 1.0);
      return Case{"rmsnorm bwd",
                  "bf16",
                  shape_of({rows, cols}),
                  6.0 * rows * cols + 4.0 * rows,
                  0,
                  [=] {
                    cuda::rmsnorm_backward(ptr<bf16>(dx), ptr<float>(dw), ptr<bf16>(dy), ptr<bf16>(x), ptr<bf16>(w),
                                           ptr<float>(r), rows, cols, false, s);
                  },
                  {x, dy, dx, w, dw, r}};
    });
  }
  f.push_back([=] {
    const int64_t cols = 4096, rows = n / cols;
    auto x = dev<float>(rows * cols, 0.5), y = dev<float>(rows * cols), w = dev<float>(cols, 1.0), r = dev<float>(rows);
    return Case{
        "rmsnorm fwd",
        "f32",
        shape_of({rows, cols}),
        8.0 * rows * cols + 4.0 * rows,
        0,
        [=] { cuda::rmsnorm_forward(ptr<float>(y), ptr<float>(r), ptr<float>(x), ptr<float>(w), rows, cols, 1e-5, s); },
        {x, y, w, r}};
  });
  {
    const int64_t hidden = 8192, rows = 2 * n / hidden;
    f.push_back([=] {
      auto in = dev<bf16>(rows * 2 * hidden, 0.5), out = dev<bf16>(rows * hidden);
      return Case{"swiglu fwd",
                  "bf16",
                  shape_of({rows, 2 * hidden}),
                  6.0 * rows * hidden,
                  0,
                  [=] { cuda::swiglu_forward(ptr<bf16>(out), ptr<bf16>(in), rows, hidden, s); },
                  {in, out}};
    });
    f.push_back([=] {
      auto in = dev<bf16>(rows * 2 * hidden, 0.5), d_out = dev<bf16>(rows * hidden, 0.1),
           d_in = dev<bf16>(rows * 2 * hidden);
      return Case{"swiglu bwd",
                  "bf16",
                  shape_of({rows, 2 * hidden}),
                  10.0 * rows * hidden,
                  0,
                  [=] { cuda::swiglu_backward(ptr<bf16>(d_in), ptr<bf16>(d_out), ptr<bf16>(in), rows, hidden, s); },
                  {in, d_out, d_in}};
    });
  }
  for (const int dir : {1, -1}) {
    f.push_back([=] {
      RopeShape rs;
      rs.batch = 8, rs.heads = 16, rs.head_dim = 128, rs.tokens = std::max<int64_t>(1, n / (8 * 16 * 128));
      const int64_t m = rs.batch * rs.tokens * rs.heads * rs.head_dim;
      auto x = dev<bf16>(m, 0.5), y = dev<bf16>(m);
      const RopeStrides cs = RopeStrides::contiguous(rs);
      return Case{dir > 0 ? "rope fwd" : "rope bwd",
                  "bf16",
                  shape_of({rs.batch, rs.tokens, rs.heads, rs.head_dim}),
                  4.0 * m,
                  0,
                  [=] {
                    if (dir > 0)
                      cuda::rope_forward(ptr<bf16>(y), cs, ptr<bf16>(x), cs, rs, s);
                    else
                      cuda::rope_backward(ptr<bf16>(y), cs, ptr<bf16>(x), cs, rs, s);
                  },
                  {x, y}};
    });
  }
  {
    const int64_t cols = 4096, rows = 2 * n / cols;
    f.push_back([=] {
      auto x = dev<bf16>(rows * cols, 0.5), y = dev<bf16>(rows * cols);
      return Case{"softmax fwd",
                  "bf16",
                  shape_of({rows, cols}),
                  4.0 * rows * cols,
                  0,
                  [=] { cuda::softmax_forward(ptr<bf16>(y), ptr<bf16>(x), rows, cols, s); },
                  {x, y}};
    });
    f.push_back([=] {
      auto y = dev<bf16>(rows * cols, 0.5), dy = dev<bf16>(rows * cols, 0.1), dx = dev<bf16>(rows * cols);
      return Case{"softmax bwd",
                  "bf16",
                  shape_of({rows, cols}),
                  6.0 * rows * cols,
                  0,
                  [=] { cuda::softmax_backward(ptr<bf16>(dx), ptr<bf16>(y), ptr<bf16>(dy), rows, cols, s); },
                  {y, dy, dx}};
    });
  }
  f.push_back([=] {
    auto p = dev<float>(n, 0.5), m = dev<float>(n), v = dev<float>(n), g = dev<bf16>(n, 0.01), pb = dev<bf16>(n);
    AdamWParams hp;
    hp.weight_decay = 0.1;
    // reads p, g (bf16), m, v; writes p, m, v and the bf16 copy of p
    return Case{"adamw (g bf16, + bf16 copy)",
                "f32",
                shape_of({n}),
                28.0 * n,
                0,
                [=] {
                  cuda::adamw_step(hp, ptr<float>(p), ptr<bf16>(g), ptr<float>(m), ptr<float>(v), n, ptr<bf16>(pb), 1.0,
                                   s);
                },
                {p, m, v, g, pb}};
  });
  f.push_back([=] {
    auto p = dev<float>(n, 0.5), m = dev<float>(n), v = dev<float>(n), g = dev<float>(n, 0.01);
    AdamWParams hp;
    return Case{
        "adamw (g f32)",
        "f32",
        shape_of({n}),
        28.0 * n,
        0,
        [=] { cuda::adamw_step(hp, ptr<float>(p), ptr<float>(g), ptr<float>(m), ptr<float>(v), n, nullptr, 1.0, s); },
        {p, m, v, g}};
  });
  {
    const int64_t vocab = 50304, rows = std::max<int64_t>(1, 4 * n / vocab);
    f.push_back([=] {
      auto logits = dev<bf16>(rows * vocab, 0.5), loss = dev<float>(rows), lse = dev<float>(rows), mean = dev<float>(1);
      auto tgt = dev<int32_t>(rows);
      auto count = dev<int64_t>(1);
      return Case{"cross_entropy fwd",
                  "bf16",
                  shape_of({rows, vocab}),
                  2.0 * rows * vocab + 12.0 * rows,
                  0,
                  [=] {
                    cuda::cross_entropy_forward(ptr<bf16>(logits), ptr<int32_t>(tgt), ptr<float>(loss), ptr<float>(lse),
                                                ptr<float>(mean), ptr<int64_t>(count), rows, vocab, -1, s);
                  },
                  {logits, loss, lse, mean, tgt, count}};
    });
    f.push_back([=] {
      auto logits = dev<bf16>(rows * vocab, 0.5), dlogits = dev<bf16>(rows * vocab), lse = dev<float>(rows, 11.0),
           dloss = dev<float>(1, 1.0);
      auto tgt = dev<int32_t>(rows);
      auto count = dev<int64_t>(1);
      const int64_t rows_host = rows;
      MODA_CUDA_CHECK(cudaMemcpy(ptr<int64_t>(count), &rows_host, sizeof rows_host, cudaMemcpyHostToDevice), "bench");
      return Case{"cross_entropy bwd",
                  "bf16",
                  shape_of({rows, vocab}),
                  4.0 * rows * vocab + 8.0 * rows,
                  0,
                  [=] {
                    cuda::cross_entropy_backward(ptr<bf16>(logits), ptr<int32_t>(tgt), ptr<float>(lse),
                                                 ptr<float>(dloss), ptr<int64_t>(count), ptr<bf16>(dlogits), rows,
                                                 vocab, -1, s);
                  },
                  {logits, dlogits, lse, dloss, tgt, count}};
    });
  }
  f.push_back([=] {
    const int64_t d = sz(8192, 64);
    auto a = dev<bf16>(d * d, 0.5), b = dev<bf16>(d * d, 0.5), c = dev<bf16>(d * d);
    GemmDesc g;
    g.m = g.n = g.k = d;
    return Case{"gemm (cuBLASLt)",
                "bf16",
                shape_of({d, d, d}),
                6.0 * d * d,
                2.0 * d * d * d,
                [=] { cuda::matmul(g, ptr<bf16>(a), ptr<bf16>(b), ptr<bf16>(c), nullptr, s); },
                {a, b, c}};
  });
  // The 125M model's training GEMMs at 64 sequences x 1024 tokens (--scale scales the tokens):
  // d_model 768, SwiGLU hidden 3072 (gate and up fused: one [2 x 3072, 768] projection), vocab
  // 50304. Linear layers compute y = x W^T. Compare MODA_GEMM_AUTOTUNE=0 (cuBLASLt's first pick)
  // with the default (autotuned); the plan report printed after the table shows each choice.
  const int64_t tokens = sz(65536, 64), dm = 768, ffn = 3072, vocab = 50304;
  struct TrainGemm {
    const char* op;
    int64_t m, n, k;
    bool ta, tb, f32_acc;  // f32_acc: bf16 inputs, f32 output, beta = 1 (weight gradient)
  };
  for (const TrainGemm t : {TrainGemm{"gemm 125M mlp up fwd (x W^T)", tokens, 2 * ffn, dm, false, true, false},
                            TrainGemm{"gemm 125M mlp down fwd (x W^T)", tokens, dm, ffn, false, true, false},
                            TrainGemm{"gemm 125M lm head fwd (x W^T)", tokens, vocab, dm, false, true, false},
                            TrainGemm{"gemm 125M mlp down dx (dy W)", tokens, ffn, dm, false, false, false},
                            TrainGemm{"gemm 125M mlp down dW += dy^T x", dm, ffn, tokens, true, false, true}}) {
    f.push_back([=] {
      auto a = dev<bf16>(t.m * t.k, 0.5), b = dev<bf16>(t.k * t.n, 0.5);
      auto c = t.f32_acc ? dev<float>(t.m * t.n) : dev<bf16>(t.m * t.n);
      GemmDesc g;
      g.m = t.m, g.n = t.n, g.k = t.k, g.trans_a = t.ta, g.trans_b = t.tb, g.beta = t.f32_acc ? 1.f : 0.f;
      const double c_bytes = t.f32_acc ? 8.0 * t.m * t.n : 2.0 * t.m * t.n;  // f32 C read and written
      return Case{t.op,
                  t.f32_acc ? "bf16->f32" : "bf16",
                  shape_of({t.m, t.n, t.k}),
                  2.0 * t.m * t.k + 2.0 * t.k * t.n + c_bytes,
                  2.0 * t.m * t.n * t.k,
                  [=] {
                    if (t.f32_acc)
                      cuda::matmul(g, ptr<bf16>(a), ptr<bf16>(b), ptr<float>(c), nullptr, s);
                    else
                      cuda::matmul(g, ptr<bf16>(a), ptr<bf16>(b), ptr<bf16>(c), nullptr, s);
                  },
                  {a, b, c}};
    });
  }
  return f;
}
#endif

// ------------------------------------------------------------------------------------------------

int run(const std::vector<std::string>& argv) {
  Args args(argv, {"device", "iters", "warmup", "scale", "ops"});
  const int iters = static_cast<int>(args.get_int("iters", 20));
  const int warmup = static_cast<int>(args.get_int("warmup", 3));
  const double scale = args.get_double("scale", 1.0);
  MODA_USAGE_CHECK(iters >= 1 && warmup >= 0, "--iters must be >= 1 and --warmup >= 0");
  MODA_USAGE_CHECK(scale > 0, "--scale must be positive, got ", scale);
  const std::vector<std::string> filter = args.all("ops");
  const std::string device = args.get_or("device", cuda_available() ? "cuda" : "cpu");
  MODA_USAGE_CHECK(device == "cpu" || device == "cuda", "--device must be cpu or cuda, got '", device, "'");
  MODA_CHECK(device == "cpu" || cuda_available(), "--device cuda but no CUDA device is available");

  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  std::string device_name = "CPU (reference kernels, one thread)";
  double copy_gbs = 0;
  std::vector<CaseFactory> factories;
  std::function<double(const std::function<void()>&)> time_ms;
#ifdef MODA_HAVE_CUDA
  if (device == "cuda") {
    cudaDeviceProp prop{};
    int dev = 0;
    MODA_CUDA_CHECK(cudaGetDevice(&dev), "bench ops");
    MODA_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev), "bench ops");
    device_name = prop.name;
    copy_gbs = gpu_copy_gbs(warmup, std::max(iters, 10));
    factories = gpu_cases(scale);
    time_ms = [=](const std::function<void()>& fn) { return gpu_time_ms(fn, nullptr, warmup, iters); };
  }
#endif
  if (device == "cpu") {
    copy_gbs = cpu_copy_gbs(scale, warmup, iters);
    factories = cpu_cases(scale);
    time_ms = [=](const std::function<void()>& fn) { return cpu_time_ms(fn, warmup, iters); };
  }

  std::printf("# moda bench ops: %s, %s\n\n", device_name.c_str(), date);
  std::printf("copy bandwidth (%s, bytes read + written / time): %.1f GB/s\n\n",
              device == "cuda" ? "cudaMemcpyAsync D2D of 1 GiB" : "memcpy", copy_gbs);
  std::printf("| op | dtype | shape | MB moved | time (ms) | GB/s | of copy | TFLOP/s |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|\n");
  for (const auto& make : factories) {
    Case c;
    double ms = 0;
    try {  // one failing op (e.g. out of memory) is reported and the table goes on
      c = make();
      if (!wanted(filter, c.op)) continue;
      ms = time_ms(c.run);
    } catch (const std::exception& e) {
      std::printf("| %s | failed: %s |\n", c.op.empty() ? "?" : c.op.c_str(), e.what());
      continue;
    }
    const double gbs = c.bytes / (ms * 1e6);
    std::string tflops = c.flops > 0 ? std::to_string(c.flops / (ms * 1e9)).substr(0, 6) : "";
    std::printf("| %s | %s | %s | %.0f | %.3f | %.0f | %.0f%% | %s |\n", c.op.c_str(), c.dtype.c_str(), c.shape.c_str(),
                c.bytes / 1e6, ms, gbs, 100.0 * gbs / copy_gbs, tflops.c_str());
    std::fflush(stdout);
  }
#ifdef MODA_HAVE_CUDA
  if (device == "cuda") {  // which cuBLASLt algorithm each GEMM shape ended up with
    const std::string plans = cuda::matmul_plan_report();
    if (!plans.empty())
      std::printf("\ncuBLASLt plans (MODA_GEMM_AUTOTUNE %s; chosen 0 = the heuristic's first pick):\n\n%s",
                  cuda::matmul_autotune_enabled() ? "on" : "off", plans.c_str());
  }
#endif
  return 0;
}

}  // namespace
}  // namespace moda::app

constexpr const char* kBenchOpsUsage =
    R"(usage: moda bench ops [--device cuda|cpu] [--iters N] [--warmup N] [--scale S] [--ops NAME...]
  Times the memory-bound kernels (median of --iters runs after --warmup) and reports GB/s
  and the fraction of the measured copy bandwidth, as a markdown table on stdout.
  --device D          cuda (default when a GPU is present) or cpu
  --iters N           timed runs per op (default 20)
  --warmup N          untimed runs first (default 3)
  --scale S           multiplies the sizes (default 1: >= 256 MB of traffic per op on a GPU)
  --ops NAME...       only the ops whose name contains one of the words
  MODA_GEMM_AUTOTUNE=0 in the environment times cuBLASLt's first-pick algorithms instead of the
  autotuned ones; the cuBLASLt plan report after the table shows which algorithm each GEMM used.
)";

MODA_COMMAND("bench ops", "time the memory-bound kernels against the device copy bandwidth", kBenchOpsUsage,
             moda::app::run);
