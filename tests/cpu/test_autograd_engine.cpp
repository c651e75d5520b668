#include <catch2/catch.hpp>

#include "autograd/function.h"
#include "autograd/gradcheck.h"
#include "autograd/graph.h"
#include "core/error.h"

using namespace moda;

// Test-only ops over f64 CPU tensors, so the engine is tested independently of the op library.
static Tensor times(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), DType::F64);
  for (int64_t i = 0; i < a.numel(); ++i) out.data<double>()[i] = a.data<double>()[i] * b.data<double>()[i];
  return record_op("times", {a, b}, {out}, [a, b](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{times(g[0], b), times(g[0], a)};
  })[0];
}

static Tensor total(const Tensor& a) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += a.data<double>()[i];
  Tensor out = Tensor::from_vector(std::vector<double>{s}, {1});
  Shape shape = a.shape();
  return record_op("total", {a}, {out}, [shape](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{Tensor::full(shape, g[0].item(), DType::F64)};
  })[0];
}

TEST_CASE("autograd: accumulates when a tensor is used twice", "[cpu][autograd]") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}).set_requires_grad(true);
  Tensor y = total(times(x, x));  // sum x^2 -> grad 2x
  y.backward();
  REQUIRE(x.grad().to_double_vector() == std::vector<double>{2, 4, 6});
  // A second backward over a new graph accumulates into the leaf.
  total(x).backward();
  REQUIRE(x.grad().to_double_vector() == std::vector<double>{3, 5, 7});
  x.zero_grad();
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("autograd: gradient accumulation converts to the accumulator dtype and names unsupported ones",
          "[cpu][autograd]") {
  Tensor acc = Tensor::from_vector(std::vector<double>{1.0, -2.0, 0.5}, {3});
  accumulate_into(acc, Tensor::from_vector(std::vector<float>{0.25f, 4.0f, -0.5f}, {3}));
  REQUIRE(acc.to_double_vector() == std::vector<double>{1.25, 2.0, 0.0});  // all exact in binary
  Tensor bf = Tensor::zeros({3}, DType::BF16);                             // CPU kernels take f32 or f64 only
  REQUIRE_THROWS_WITH(accumulate_into(bf, Tensor::zeros({3}, DType::BF16)),
                      Catch::Contains("gradient accumulation") && Catch::Contains("f32 or f64"));
}

TEST_CASE("autograd: no-grad scope records nothing, graph is freed after backward", "[cpu][autograd]") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2}).set_requires_grad(true);
  {
    NoGradGuard guard;
    Tensor y = times(x, x);
    REQUIRE_FALSE(y.requires_grad());
  }
  Tensor y = total(times(x, x));
  std::weak_ptr<Node> node = y.impl()->autograd.grad_fn;
  y.backward();
  REQUIRE(node.lock()->backward == nullptr);  // saved tensors released
  REQUIRE(node.lock()->next.empty());
}

TEST_CASE("autograd: grad-ready hook fires once the leaf gradient is complete", "[cpu][autograd]") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2}).set_requires_grad(true);
  Tensor w = Tensor::from_vector(std::vector<double>{3, 4}, {2}).set_requires_grad(true);
  std::vector<double> seen;
  int calls = 0;
  x.register_grad_ready_hook([&](Tensor& g) {
    ++calls;
    seen = g.to_double_vector();
  });
  // x feeds two paths; the hook must see the sum of both.
  Tensor y = total(times(times(x, w), x));  // sum w x^2 -> 2 w x
  y.backward();
  REQUIRE(calls == 1);
  REQUIRE(seen == std::vector<double>{6, 16});
}

TEST_CASE("autograd: gradcheck detects right and wrong gradients", "[cpu][autograd]") {
  Tensor a = Tensor::randn({4}, 7, DType::F64).set_requires_grad(true);
  Tensor b = Tensor::randn({4}, 8, DType::F64).set_requires_grad(true);
  auto ok = gradcheck([](const std::vector<Tensor>& in) { return total(times(in[0], in[1])); }, {a, b});
  REQUIRE(ok.ok);
  auto wrong_op = [](const std::vector<Tensor>& in) {
    Tensor x = in[0];
    double s = 0;
    for (int64_t i = 0; i < x.numel(); ++i) s += x.data<double>()[i] * x.data<double>()[i];
    Tensor out = Tensor::from_vector(std::vector<double>{s}, {1});
    Shape shape = x.shape();
    return record_op("wrong", {x}, {out}, [x](const std::vector<Tensor>&) {
      return std::vector<Tensor>{x.clone()};  // should be 2x
    })[0];
  };
  Tensor c = Tensor::randn({3}, 9, DType::F64).set_requires_grad(true);
  auto bad = gradcheck(wrong_op, {c});
  REQUIRE_FALSE(bad.ok);
  REQUIRE(bad.report.find("element") != std::string::npos);
}
