// CPU pointwise / row-wise kernels against independent double loops and finite differences.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cpu/swiglu.h"
#include "tests/compare.h"

using namespace moda;
using moda::test::rel_l2;

namespace {

template <typename T>
std::vector<T> random_vec(size_t n, uint32_t seed, double lo = -2.0, double hi = 2.0) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

template <typename T>
std::vector<T> poisoned(size_t n) {
  return std::vector<T>(n, std::numeric_limits<T>::quiet_NaN());
}

// Central differences of loss(x) in double, compared with an analytic gradient.
double fd_rel_error(std::vector<double> x, const std::function<double(const std::vector<double>&)>& loss,
                    const std::vector<double>& analytic, double h = 1e-6) {
  std::vector<double> numeric(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = loss(x);
    x[i] = keep - h;
    const double down = loss(x);
    x[i] = keep;
    numeric[i] = (up - down) / (2 * h);
  }
  return rel_l2(analytic, numeric);
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

TEST_CASE("pointwise cpu: add, mul, scale, axpy, fill", "[cpu][ops]") {
  const int64_t n = 1003;
  auto a = random_vec<float>(n, 1), b = random_vec<float>(n, 2);
  auto out = poisoned<float>(n);
  std::vector<double> ref(n);

  cpu::add(out.data(), a.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) ref[i] = double(a[i]) + double(b[i]);
  CHECK(rel_l2(out, ref) < 1e-7);

  cpu::mul(out.data(), a.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) ref[i] = double(a[i]) * double(b[i]);
  CHECK(rel_l2(out, ref) < 1e-7);

  cpu::scale(out.data(), a.data(), -0.37, n);
  for (int64_t i = 0; i < n; ++i) ref[i] = -0.37 * double(a[i]);
  CHECK(rel_l2(out, ref) < 1e-7);

  auto y = b;
  cpu::axpy(y.data(), a.data(), 2.5, n);
  for (int64_t i = 0; i < n; ++i) ref[i] = double(b[i]) + 2.5 * double(a[i]);
  CHECK(rel_l2(y, ref) < 1e-7);

  const auto a0 = a;
  cpu::add(a.data(), a.data(), a.data(), n);  // out aliasing both inputs
  for (int64_t i = 0; i < n; ++i) REQUIRE(a[i] == 2 * a0[i]);
  cpu::fill(out.data(), 1.25, n);
  for (int64_t i = 0; i < n; ++i) REQUIRE(out[i] == 1.25f);
}

TEST_CASE("pointwise cpu: cast f32 <-> bf16 rounds to nearest even", "[cpu][ops]") {
  const float inputs[] = {1.0f,
                          1.0f + 0x1p-8f,
                          1.0f + 3 * 0x1p-8f,
                          -2.5f,
                          0.0f,
                          std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity()};
  std::vector<bf16> h(7);
  cpu::cast(h.data(), inputs, 7);
  CHECK(h[0].bits == 0x3f80);
  CHECK(h[1].bits == 0x3f80);  // tie -> even mantissa
  CHECK(h[2].bits == 0x3f82);  // tie -> even (up)
  CHECK(h[3].bits == 0xc020);
  CHECK(h[4].bits == 0x0000);
  std::vector<float> back(7);
  cpu::cast(back.data(), h.data(), 7);
  CHECK(back[0] == 1.0f);
  CHECK(back[3] == -2.5f);
  CHECK(std::isnan(back[5]));
  CHECK(std::isinf(back[6]));

  // Round trip of random values: relative error below 2^-8.
  auto x = random_vec<float>(1001, 3);
  std::vector<bf16> xb(x.size());
  std::vector<float> xr(x.size());
  cpu::cast(xb.data(), x.data(), x.size());
  cpu::cast(xr.data(), xb.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(std::fabs(xr[i] - x[i]) <= std::fabs(x[i]) * 0x1p-8f);
}

TEST_CASE("reduce cpu: sum, mean and column sums", "[cpu][ops]") {
  const int64_t rows = 37, cols = 1000;
  auto x = random_vec<float>(rows * cols, 4);
  double total = 0;
  for (float v : x) total += v;
  float s = NAN, m = NAN;
  cpu::sum(&s, x.data(), rows * cols);
  cpu::mean(&m, x.data(), rows * cols);
  CHECK(std::fabs(s - total) <= 1e-6 * std::fabs(total) + 1e-4);
  CHECK(std::fabs(m - total / (rows * cols)) <= 1e-6);

  std::vector<double> ref(cols, 0.0);
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t r = 0; r < rows; ++r) ref[j] += x[r * cols + j];  // column-major order on purpose
  auto out = poisoned<float>(cols);
  cpu::sum_rows(out.data(), x.data(), rows, cols);
  CHECK(rel_l2(out, ref) < 1e-6);
  cpu::sum_rows(out.data(), x.data(), rows, cols, /*accumulate=*/true);
  for (auto& v : ref) v *= 2;
  CHECK(rel_l2(out, ref) < 1e-6);
}

TEST_CASE("rmsnorm cpu: forward matches the formula, backward matches finite differences", "[cpu][ops]") {
  SECTION("forward, float, with and without weight") {
    const int64_t rows = 37, cols = 1000;
    auto x = random_vec<float>(rows * cols, 5);
    auto w = random_vec<float>(cols, 6, 0.5, 1.5);
    auto y = poisoned<float>(rows * cols), rstd = poisoned<float>(rows);
    cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), rows, cols, 1e-5);
    std::vector<double> ref(rows * cols), ref_nw(rows * cols), ref_rstd(rows);
    for (int64_t r = 0; r < rows; ++r) {
      double ms = 0;
      for (int64_t j = 0; j < cols; ++j) ms += double(x[r * cols + j]) * x[r * cols + j] / cols;
      ref_rstd[r] = 1.0 / std::sqrt(ms + 1e-5);
      for (int64_t j = 0; j < cols; ++j) {
        ref_nw[r * cols + j] = x[r * cols + j] * ref_rstd[r];
        ref[r * cols + j] = ref_nw[r * cols + j] * w[j];
      }
    }
    CHECK(rel_l2(y, ref) < 1e-6);
    CHECK(rel_l2(rstd, ref_rstd) < 1e-6);
    cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), static_cast<const float*>(nullptr), rows, cols, 1e-5);
    CHECK(rel_l2(y, ref_nw) < 1e-6);
  }
  SECTION("backward, double, finite differences for dx and dw") {
    const int64_t rows = 5, cols = 37;
    const double eps = 1e-3;
    auto x = random_vec<double>(rows * cols, 7);
    auto w = random_vec<double>(cols, 8, 0.5, 1.5);
    auto r = random_vec<double>(rows * cols, 9);  // loss = <y, r>, so dy = r
    auto loss = [&](const std::vector<double>& xx, const std::vector<double>& ww) {
      std::vector<double> y(rows * cols), rs(rows);
      cpu::rmsnorm_forward(y.data(), rs.data(), xx.data(), ww.data(), rows, cols, eps);
      return dot(y, r);
    };
    std::vector<double> y(rows * cols), rstd(rows), dx = poisoned<double>(rows * cols), dw = poisoned<double>(cols);
    cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), rows, cols, eps);
    cpu::rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), rows, cols);
    CHECK(fd_rel_error(
              x, [&](const std::vector<double>& xx) { return loss(xx, w); }, dx) < 1e-7);
    CHECK(fd_rel_error(
              w, [&](const std::vector<double>& ww) { return loss(x, ww); }, dw) < 1e-7);
    // accumulate_dw adds; dw == nullptr leaves dx alone.
    auto dw2 = dw;
    cpu::rmsnorm_backward(dx.data(), dw2.data(), r.data(), x.data(), w.data(), rstd.data(), rows, cols, true);
    for (int64_t j = 0; j < cols; ++j) CHECK(dw2[j] == Approx(2 * dw[j]).epsilon(1e-12));
    auto dx2 = poisoned<double>(rows * cols);
    cpu::rmsnorm_backward(dx2.data(), static_cast<double*>(nullptr), r.data(), x.data(), w.data(), rstd.data(), rows,
                          cols);
    CHECK(rel_l2(dx2, dx) < 1e-15);
  }
}

TEST_CASE("rope cpu: forward matches complex rotation, strided and in-place, backward inverts", "[cpu][ops]") {
  RopeShape s;
  s.batch = 2, s.tokens = 13, s.heads = 3, s.head_dim = 10, s.theta = 500.0, s.pos_offset = 7;
  const int64_t n = s.batch * s.tokens * s.heads * s.head_dim, half = s.head_dim / 2;
  auto x = random_vec<double>(n, 10);
  const RopeStrides cs = RopeStrides::contiguous(s);
  auto y = poisoned<double>(n);
  cpu::rope_forward(y.data(), cs, x.data(), cs, s);

  // Reference: (x1 + i x2) * e^{i a} with a = p * theta^(-i / half).
  std::vector<double> ref(n);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t t = 0; t < s.tokens; ++t)
      for (int64_t h = 0; h < s.heads; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const int64_t base = ((b * s.tokens + t) * s.heads + h) * s.head_dim;
          const double a = double(t + s.pos_offset) / std::pow(s.theta, double(i) / half);
          const double re = x[base + i], im = x[base + i + half];
          ref[base + i] = re * std::cos(a) - im * std::sin(a);
          ref[base + i + half] = re * std::sin(a) + im * std::cos(a);
        }
  CHECK(rel_l2(y, ref) < 1e-13);

  SECTION("strided view into a fused [B, T, 3, H, d] qkv buffer, in place") {
    std::vector<double> qkv = random_vec<double>(3 * n, 11);
    // Put x into the k slot (index 1) and rotate it in place.
    RopeStrides ks{s.tokens * 3 * s.heads * s.head_dim, 3 * s.heads * s.head_dim, s.head_dim};
    const std::vector<double> before = qkv;
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t t = 0; t < s.tokens; ++t)
        for (int64_t h = 0; h < s.heads; ++h)
          for (int64_t i = 0; i < s.head_dim; ++i)
            qkv[b * ks.batch + t * ks.token + s.heads * s.head_dim + h * ks.head + i] =
                x[((b * s.tokens + t) * s.heads + h) * s.head_dim + i];
    double* k = qkv.data() + s.heads * s.head_dim;
    cpu::rope_forward(k, ks, k, ks, s);
    std::vector<double> got(n);
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t t = 0; t < s.tokens; ++t)
        for (int64_t h = 0; h < s.heads; ++h)
          for (int64_t i = 0; i < s.head_dim; ++i)
            got[((b * s.tokens + t) * s.heads + h) * s.head_dim + i] = k[b * ks.batch + t * ks.token + h * ks.head + i];
    CHECK(rel_l2(got, ref) < 1e-13);
    // q and v slots untouched.
    for (int64_t bt = 0; bt < s.batch * s.tokens; ++bt)
      for (int64_t j = 0; j < s.heads * s.head_dim; ++j) {
        REQUIRE(qkv[bt * 3 * s.heads * s.head_dim + j] == before[bt * 3 * s.heads * s.head_dim + j]);
        REQUIRE(qkv[bt * 3 * s.heads * s.head_dim + 2 * s.heads * s.head_dim + j] ==
                before[bt * 3 * s.heads * s.head_dim + 2 * s.heads * s.head_dim + j]);
      }
  }
  SECTION("backward is the inverse rotation and the transpose (finite differences)") {
    auto back = poisoned<double>(n);
    cpu::rope_backward(back.data(), cs, y.data(), cs, s);
    CHECK(rel_l2(back, x) < 1e-13);
    auto r = random_vec<double>(n, 12);
    auto dx = poisoned<double>(n);
    cpu::rope_backward(dx.data(), cs, r.data(), cs, s);
    auto loss = [&](const std::vector<double>& xx) {
      std::vector<double> yy(n);
      cpu::rope_forward(yy.data(), cs, xx.data(), cs, s);
      return dot(yy, r);
    };
    CHECK(fd_rel_error(x, loss, dx) < 1e-8);
  }
  SECTION("float instantiation agrees with double") {
    std::vector<float> xf(x.begin(), x.end()), yf = poisoned<float>(n);
    cpu::rope_forward(yf.data(), cs, xf.data(), cs, s);
    CHECK(rel_l2(yf, ref) < 1e-6);
  }
}

TEST_CASE("swiglu cpu: [gate | up] layout, forward formula, backward finite differences", "[cpu][ops]") {
  const int64_t rows = 7, hidden = 13;
  auto in = random_vec<double>(rows * 2 * hidden, 13, -4, 4);
  auto out = poisoned<double>(rows * hidden);
  cpu::swiglu_forward(out.data(), in.data(), rows, hidden);
  std::vector<double> ref(rows * hidden);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < hidden; ++i) {
      const double g = in[r * 2 * hidden + i], u = in[r * 2 * hidden + hidden + i];
      ref[r * hidden + i] = g / (1 + std::exp(-g)) * u;
    }
  CHECK(rel_l2(out, ref) < 1e-14);

  auto r = random_vec<double>(rows * hidden, 14);
  auto d_in = poisoned<double>(rows * 2 * hidden);
  cpu::swiglu_backward(d_in.data(), r.data(), in.data(), rows, hidden);
  auto loss = [&](const std::vector<double>& xx) {
    std::vector<double> o(rows * hidden);
    cpu::swiglu_forward(o.data(), xx.data(), rows, hidden);
    return dot(o, r);
  };
  CHECK(fd_rel_error(in, loss, d_in) < 1e-8);

  std::vector<float> inf(in.begin(), in.end()), outf = poisoned<float>(rows * hidden);
  cpu::swiglu_forward(outf.data(), inf.data(), rows, hidden);
  CHECK(rel_l2(outf, ref) < 1e-6);
}

TEST_CASE("softmax cpu: rows sum to one, large inputs stay finite, backward finite differences", "[cpu][ops]") {
  const int64_t rows = 6, cols = 17;
  auto x = random_vec<double>(rows * cols, 15, -5, 5);
  x[3] = 800.0;  // exp would overflow without subtracting the row max
  auto y = poisoned<double>(rows * cols);
  cpu::softmax_forward(y.data(), x.data(), rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0, e = 0;
    for (int64_t j = 0; j < cols; ++j) e += std::exp(x[r * cols + j] - (r == 0 ? 800.0 : 0.0));
    for (int64_t j = 0; j < cols; ++j) {
      s += y[r * cols + j];
      REQUIRE(y[r * cols + j] == Approx(std::exp(x[r * cols + j] - (r == 0 ? 800.0 : 0.0)) / e).epsilon(1e-12));
    }
    CHECK(s == Approx(1.0).epsilon(1e-14));
  }
  x[3] = 0.5;
  cpu::softmax_forward(y.data(), x.data(), rows, cols);
  auto r = random_vec<double>(rows * cols, 16);
  auto dx = poisoned<double>(rows * cols);
  cpu::softmax_backward(dx.data(), y.data(), r.data(), rows, cols);
  auto loss = [&](const std::vector<double>& xx) {
    std::vector<double> yy(rows * cols);
    cpu::softmax_forward(yy.data(), xx.data(), rows, cols);
    return dot(yy, r);
  };
  CHECK(fd_rel_error(x, loss, dx) < 1e-8);
}
