// CUDA memory-bound kernels against the CPU reference kernels, on fresh random inputs with odd
// sizes, outputs poisoned with NaN before each launch, f32 and bf16 storage.
#include <cuda_runtime_api.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/bf16.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/softmax.h"
#include "kernels/cuda/swiglu.h"
#include "tests/compare.h"

using namespace moda;
using moda::test::rel_l2;

namespace {

void cuda_ok(cudaError_t e) { REQUIRE(e == cudaSuccess); }

// Device array of T; starts poisoned (all bits set: NaN for both f32 and bf16).
template <typename T>
struct DeviceArray {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceArray(size_t count) : n(count) {
    cuda_ok(cudaMalloc(reinterpret_cast<void**>(&ptr), (n ? n : 1) * sizeof(T)));
    poison();
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() { cudaFree(ptr); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  void poison() { cuda_ok(cudaMemset(ptr, 0xff, n * sizeof(T))); }
  void upload(const std::vector<T>& host) {
    cuda_ok(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    cuda_ok(cudaDeviceSynchronize());
    std::vector<T> host(n);
    cuda_ok(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
};

float to_f(float v) { return v; }
float to_f(bf16 v) { return bf16_to_float(v); }
template <typename T>
T from_f(float v);
template <>
float from_f<float>(float v) {
  return v;
}
template <>
bf16 from_f<bf16>(float v) {
  return float_to_bf16(v);
}

template <typename T>
std::vector<float> to_float(const std::vector<T>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_f(v[i]);
  return out;
}

// Random values already representable in T, so the CPU reference sees exactly the GPU's inputs.
template <typename T>
std::vector<T> random_vec(size_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = from_f<T>(dist(gen));
  return v;
}

template <typename T>
double tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-2;
}

}  // namespace

TEMPLATE_TEST_CASE("pointwise cuda: add, mul, scale, axpy, fill match the CPU", "[gpu][ops]", float, bf16) {
  using T = TestType;
  for (const int64_t n : {int64_t(1000003), int64_t(13)}) {
    for (const int64_t off : {0, 1}) {  // off = 1: misaligned pointers take the scalar path
      CAPTURE(n, off);
      const auto a = random_vec<T>(n + off, 1), b = random_vec<T>(n + off, 2);
      const auto af = to_float(a), bf = to_float(b);
      DeviceArray<T> da(a), db(b), dout(n + off);
      std::vector<float> ref(n + off, NAN);

      cuda::add(dout.ptr + off, da.ptr + off, db.ptr + off, n, nullptr);
      cpu::add(ref.data() + off, af.data() + off, bf.data() + off, n);
      CHECK(rel_l2(dout.download(), ref) < tol<T>());

      dout.poison();
      cuda::mul(dout.ptr + off, da.ptr + off, db.ptr + off, n, nullptr);
      cpu::mul(ref.data() + off, af.data() + off, bf.data() + off, n);
      CHECK(rel_l2(dout.download(), ref) < tol<T>());

      dout.poison();
      cuda::scale(dout.ptr + off, da.ptr + off, -0.75, n, nullptr);
      cpu::scale(ref.data() + off, af.data() + off, -0.75, n);
      CHECK(rel_l2(dout.download(), ref) < tol<T>());

      dout.poison();
      cuda::fill(dout.ptr + off, 0.5, n, nullptr);
      cpu::fill(ref.data() + off, 0.5, n);
      CHECK(rel_l2(dout.download(), ref) < tol<T>());

      dout.poison();
      DeviceArray<float> scalar(std::vector<float>{0.75f});
      cuda::fill(dout.ptr + off, scalar.ptr, -2.0, n, nullptr);  // broadcast of a device scalar
      cpu::fill(ref.data() + off, -1.5, n);
      CHECK(rel_l2(dout.download(), ref) < tol<T>());

      cuda::axpy(db.ptr + off, da.ptr + off, 1.5, n, nullptr);  // y += 1.5 x, y was b
      std::vector<float> y = bf;
      cpu::axpy(y.data() + off, af.data() + off, 1.5, n);
      CHECK(rel_l2(db.download(), y) < tol<T>());
    }
  }
}

TEST_CASE("pointwise cuda: axpy accumulates bf16 gradients into f32", "[gpu][ops]") {
  const int64_t n = 1000003;
  const auto x = random_vec<bf16>(n, 3);
  const auto y = random_vec<float>(n, 4);
  DeviceArray<bf16> dx(x);
  DeviceArray<float> dy(y);
  cuda::axpy(dy.ptr, dx.ptr, 0.25, n, nullptr);
  std::vector<float> ref = y;
  const auto xf = to_float(x);
  cpu::axpy(ref.data(), xf.data(), 0.25, n);
  CHECK(rel_l2(dy.download(), ref) < 1e-6);
}

TEST_CASE("pointwise cuda: casts match the CPU bit for bit", "[gpu][ops]") {
  for (const int64_t off : {0, 1}) {
    const int64_t n = 1000003;
    auto x = random_vec<float>(n + off, 5, -100, 100);
    x[off] = std::numeric_limits<float>::quiet_NaN();
    x[off + 1] = std::numeric_limits<float>::infinity();
    x[off + 2] = 1.0f + 0x1p-8f;  // a tie
    DeviceArray<float> dx(x);
    DeviceArray<bf16> db(n + off);
    cuda::cast(db.ptr + off, dx.ptr + off, n, nullptr);
    std::vector<bf16> ref(n + off);
    cpu::cast(ref.data() + off, x.data() + off, n);
    const auto got = db.download();
    int64_t mismatches = 0;
    for (int64_t i = off; i < n + off; ++i) {
      const bool both_nan = std::isnan(bf16_to_float(got[i])) && std::isnan(bf16_to_float(ref[i]));
      if (got[i].bits != ref[i].bits && !both_nan) ++mismatches;
    }
    CHECK(mismatches == 0);

    DeviceArray<float> back(n + off);
    cuda::cast(back.ptr + off, db.ptr + off, n, nullptr);
    std::vector<float> ref_back(n + off);
    cpu::cast(ref_back.data() + off, ref.data() + off, n);
    const auto got_back = back.download();
    for (int64_t i = off + 3; i < n + off; ++i) REQUIRE(got_back[i] == ref_back[i]);
    CHECK(std::isnan(got_back[off]));
  }
}

TEMPLATE_TEST_CASE("reduce cuda: sum and mean are accurate and deterministic", "[gpu][ops]", float, bf16) {
  using T = TestType;
  for (const int64_t off : {0, 1}) {
    const int64_t n = 1000003;
    const auto x = random_vec<T>(n + off, 6, -1.0f, 3.0f);
    const auto xf = to_float(x);
    DeviceArray<T> dx(x);
    DeviceArray<float> out(2);
    cuda::sum(out.ptr, dx.ptr + off, n, nullptr);
    cuda::mean(out.ptr + 1, dx.ptr + off, n, nullptr);
    const auto got = out.download();
    double s = 0, m = 0;
    cpu::sum(&s, std::vector<double>(xf.begin() + off, xf.end()).data(), n);
    cpu::mean(&m, std::vector<double>(xf.begin() + off, xf.end()).data(), n);
    CHECK(std::fabs(got[0] - s) <= 1e-6 * std::fabs(s));
    CHECK(std::fabs(got[1] - m) <= 1e-6 * std::fabs(m));
    out.poison();
    cuda::sum(out.ptr, dx.ptr + off, n, nullptr);
    const auto again = out.download();
    CHECK(std::memcmp(&again[0], &got[0], sizeof(float)) == 0);
  }
}

TEMPLATE_TEST_CASE("reduce cuda: column sums over rows (bias gradients)", "[gpu][ops]", float, bf16) {
  using T = TestType;
  struct Shape {
    int64_t rows, cols;
  };
  for (const Shape s : {Shape{37, 1000}, Shape{37, 4099}, Shape{20011, 96}, Shape{3, 7}}) {
    CAPTURE(s.rows, s.cols);
    const auto x = random_vec<T>(s.rows * s.cols, 7);
    const auto xf = to_float(x);
    DeviceArray<T> dx(x);
    DeviceArray<float> out(s.cols);
    std::vector<float> ref(s.cols);
    cuda::sum_rows(out.ptr, dx.ptr, s.rows, s.cols, false, nullptr);
    cpu::sum_rows(ref.data(), xf.data(), s.rows, s.cols);
    const auto first = out.download();
    CHECK(rel_l2(first, ref) < 1e-5);
    cuda::sum_rows(out.ptr, dx.ptr, s.rows, s.cols, true, nullptr);
    cpu::sum_rows(ref.data(), xf.data(), s.rows, s.cols, true);
    CHECK(rel_l2(out.download(), ref) < 1e-5);
  }
}

TEMPLATE_TEST_CASE("rmsnorm cuda: forward and backward match the CPU", "[gpu][ops]", float, bf16) {
  using T = TestType;
  struct Shape {
    int64_t rows, cols;
  };
  for (const Shape s : {Shape{37, 1000}, Shape{37, 4099}, Shape{3001, 64}, Shape{37, 4096}, Shape{5, 16384},
                        Shape{2001, 1000}, Shape{9, 3}}) {
    for (const bool weighted : {true, false}) {
      CAPTURE(s.rows, s.cols, weighted);
      const int64_t n = s.rows * s.cols;
      const auto x = random_vec<T>(n, 8), w = random_vec<T>(s.cols, 9, 0.5f, 1.5f), dy = random_vec<T>(n, 10);
      const auto xf = to_float(x), wf = to_float(w), dyf = to_float(dy);
      DeviceArray<T> dx_in(x), dw_in(w), ddy(dy), dout(n), ddx(n);
      DeviceArray<float> drstd(s.rows), ddw(s.cols);
      const T* wp = weighted ? dw_in.ptr : nullptr;
      const float* wfp = weighted ? wf.data() : nullptr;

      cuda::rmsnorm_forward(dout.ptr, drstd.ptr, dx_in.ptr, wp, s.rows, s.cols, 1e-5, nullptr);
      std::vector<float> y(n), rstd(s.rows);
      cpu::rmsnorm_forward(y.data(), rstd.data(), xf.data(), wfp, s.rows, s.cols, 1e-5);
      CHECK(rel_l2(dout.download(), y) < tol<T>());
      CHECK(rel_l2(drstd.download(), rstd) < 1e-5);

      cuda::rmsnorm_backward(ddx.ptr, weighted ? ddw.ptr : nullptr, ddy.ptr, dx_in.ptr, wp, drstd.ptr, s.rows, s.cols,
                             false, nullptr);
      std::vector<float> dx(n), dw(s.cols);
      cpu::rmsnorm_backward(dx.data(), weighted ? dw.data() : nullptr, dyf.data(), xf.data(), wfp, rstd.data(), s.rows,
                            s.cols);
      CHECK(rel_l2(ddx.download(), dx) < tol<T>());
      if (weighted) {
        CHECK(rel_l2(ddw.download(), dw) < 1e-5);
        cuda::rmsnorm_backward(static_cast<T*>(nullptr), ddw.ptr, ddy.ptr, dx_in.ptr, wp, drstd.ptr, s.rows, s.cols,
                               true, nullptr);
        for (auto& v : dw) v *= 2;
        CHECK(rel_l2(ddw.download(), dw) < 1e-5);
      }
    }
  }
}

TEMPLATE_TEST_CASE("rope cuda: strided, in place, forward and backward match the CPU", "[gpu][ops]", float, bf16) {
  using T = TestType;
  for (const int64_t d : {int64_t(64), int64_t(10), int64_t(128)}) {
    RopeShape s;
    s.batch = 2, s.tokens = 37, s.heads = 5, s.head_dim = d, s.theta = 10000.0, s.pos_offset = 1000;
    CAPTURE(d);
    const int64_t n = s.batch * s.tokens * s.heads * s.head_dim;
    const RopeStrides cs = RopeStrides::contiguous(s);
    const auto x = random_vec<T>(n, 11);
    const auto xf = to_float(x);
    DeviceArray<T> din(x), dout(n);
    std::vector<float> ref(n), back(n);
    cuda::rope_forward(dout.ptr, cs, din.ptr, cs, s, nullptr);
    cpu::rope_forward(ref.data(), cs, xf.data(), cs, s);
    CHECK(rel_l2(dout.download(), ref) < tol<T>());
    cuda::rope_backward(dout.ptr, cs, din.ptr, cs, s, nullptr);
    cpu::rope_backward(back.data(), cs, xf.data(), cs, s);
    CHECK(rel_l2(dout.download(), back) < tol<T>());

    // k slot of a fused [B, T, 3, H, d] buffer, rotated in place; q and v slots must not change.
    const RopeStrides ks{s.tokens * 3 * s.heads * d, 3 * s.heads * d, d};
    const auto qkv = random_vec<T>(3 * n, 12);
    auto qkvf = to_float(qkv);
    DeviceArray<T> dqkv(qkv);
    cuda::rope_forward(dqkv.ptr + s.heads * d, ks, dqkv.ptr + s.heads * d, ks, s, nullptr);
    cpu::rope_forward(qkvf.data() + s.heads * d, ks, qkvf.data() + s.heads * d, ks, s);
    const auto got = dqkv.download();
    CHECK(rel_l2(got, qkvf) < tol<T>());
    for (int64_t bt = 0; bt < s.batch * s.tokens; ++bt)
      for (int64_t j = 0; j < s.heads * d; ++j) {
        const int64_t q = bt * 3 * s.heads * d + j, v = q + 2 * s.heads * d;
        REQUIRE(std::memcmp(&got[q], &qkv[q], sizeof(T)) == 0);
        REQUIRE(std::memcmp(&got[v], &qkv[v], sizeof(T)) == 0);
      }
  }
}

TEMPLATE_TEST_CASE("swiglu cuda: forward and backward match the CPU", "[gpu][ops]", float, bf16) {
  using T = TestType;
  struct Shape {
    int64_t rows, hidden;
  };
  for (const Shape s : {Shape{37, 1000}, Shape{37, 4099}, Shape{1001, 1536}, Shape{1, 3}}) {
    CAPTURE(s.rows, s.hidden);
    const int64_t n_in = s.rows * 2 * s.hidden, n_out = s.rows * s.hidden;
    const auto in = random_vec<T>(n_in, 13, -6, 6), dout = random_vec<T>(n_out, 14);
    const auto inf = to_float(in), doutf = to_float(dout);
    DeviceArray<T> din(in), ddout(dout), dout_(n_out), ddin(n_in);
    std::vector<float> out(n_out), d_in(n_in);
    cuda::swiglu_forward(dout_.ptr, din.ptr, s.rows, s.hidden, nullptr);
    cpu::swiglu_forward(out.data(), inf.data(), s.rows, s.hidden);
    CHECK(rel_l2(dout_.download(), out) < tol<T>());
    cuda::swiglu_backward(ddin.ptr, ddout.ptr, din.ptr, s.rows, s.hidden, nullptr);
    cpu::swiglu_backward(d_in.data(), doutf.data(), inf.data(), s.rows, s.hidden);
    CHECK(rel_l2(ddin.download(), d_in) < tol<T>());
    cuda::swiglu_backward(din.ptr, ddout.ptr, din.ptr, s.rows, s.hidden, nullptr);  // in place
    CHECK(rel_l2(din.download(), d_in) < tol<T>());
  }
}

TEMPLATE_TEST_CASE("softmax cuda: forward and backward match the CPU", "[gpu][ops]", float, bf16) {
  using T = TestType;
  struct Shape {
    int64_t rows, cols;
  };
  for (const Shape s : {Shape{37, 1000}, Shape{37, 4099}, Shape{37, 16384}, Shape{3001, 64}, Shape{11, 7}}) {
    CAPTURE(s.rows, s.cols);
    const int64_t n = s.rows * s.cols;
    auto x = random_vec<T>(n, 15, -8, 8);
    x[0] = from_f<T>(60.0f);  // large logits must not overflow
    const auto dy = random_vec<T>(n, 16);
    const auto xf = to_float(x), dyf = to_float(dy);
    DeviceArray<T> dx_in(x), ddy(dy), dy_out(n), ddx(n);
    std::vector<float> y(n), dx(n);
    cuda::softmax_forward(dy_out.ptr, dx_in.ptr, s.rows, s.cols, nullptr);
    cpu::softmax_forward(y.data(), xf.data(), s.rows, s.cols);
    const auto got_y = dy_out.download();
    CHECK(rel_l2(got_y, y) < tol<T>());
    // Backward from the GPU's own y (what training does); reference from the same y.
    const auto yf = to_float(got_y);
    cuda::softmax_backward(ddx.ptr, dy_out.ptr, ddy.ptr, s.rows, s.cols, nullptr);
    cpu::softmax_backward(dx.data(), yf.data(), dyf.data(), s.rows, s.cols);
    CHECK(rel_l2(ddx.download(), dx) < tol<T>());
  }
}
