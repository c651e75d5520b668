// Differentiable pointwise ops on CUDA (f32 and bf16) against the same graph on the CPU in f64:
// forward values and input gradients through the autograd engine.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "autograd/pointwise_ops.h"
#include "tests/compare.h"

using namespace moda;
using moda::test::rel_l2;

namespace {

using Op = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs loss = sum(op(inputs) * r) on CUDA in `dtype` and on the CPU in f64 from the same (rounded)
// values; compares op's output and every input's gradient.
void compare(const Op& op, const std::vector<Shape>& shapes, DType dtype, uint64_t seed) {
  const double tol = dtype == DType::F32 ? 1e-5 : 1e-2;
  std::vector<Tensor> gpu_in, cpu_in;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor g = Tensor::uniform(shapes[i], seed + i, -2.0, 2.0, dtype, Device::cuda()).set_requires_grad(true);
    gpu_in.push_back(g);
    cpu_in.push_back(g.detach().to(Device::cpu()).to(DType::F64).set_requires_grad(true));
  }
  Tensor y_gpu = op(gpu_in), y_cpu = op(cpu_in);
  REQUIRE(y_gpu.device().is_cuda());
  REQUIRE(y_gpu.shape() == y_cpu.shape());
  CHECK(rel_l2(y_gpu.to_double_vector(), y_cpu.to_double_vector()) < tol);

  Tensor r_gpu = Tensor::uniform(y_gpu.shape(), seed + 100, -1.0, 1.0, y_gpu.dtype(), Device::cuda());
  Tensor r_cpu = r_gpu.to(Device::cpu()).to(DType::F64);
  ops::sum(ops::mul(y_gpu, r_gpu)).backward();
  ops::sum(ops::mul(y_cpu, r_cpu)).backward();
  for (size_t i = 0; i < shapes.size(); ++i) {
    INFO("gradient of input " << i);
    REQUIRE(gpu_in[i].grad().defined());
    CHECK(rel_l2(gpu_in[i].grad().to_double_vector(), cpu_in[i].grad().to_double_vector()) < tol);
  }
}

}  // namespace

TEST_CASE("pointwise ops cuda: forward and gradients match the CPU in f64", "[gpu][ops]") {
  for (DType dt : {DType::F32, DType::BF16}) {
    DYNAMIC_SECTION(dtype_name(dt)) {
      compare([](const std::vector<Tensor>& x) { return ops::add(x[0], x[1]); }, {{37, 1000}, {37, 1000}}, dt, 1);
      compare([](const std::vector<Tensor>& x) { return ops::mul(x[0], x[1]); }, {{1000003}, {1000003}}, dt, 2);
      compare([](const std::vector<Tensor>& x) { return ops::scale(x[0], 0.3); }, {{4099}}, dt, 3);
      compare([](const std::vector<Tensor>& x) { return ops::scale(ops::sum(x[0]), 1e-3); }, {{1000003}}, dt, 4);
      compare([](const std::vector<Tensor>& x) { return ops::mean(x[0]); }, {{37, 4099}}, dt, 5);
      compare([](const std::vector<Tensor>& x) { return ops::rms_norm(x[0], x[1], 1e-5); }, {{37, 1000}, {1000}}, dt,
              6);
      compare([](const std::vector<Tensor>& x) { return ops::rms_norm(x[0], Tensor(), 1e-5); }, {{5, 7, 4099}}, dt, 7);
      compare([](const std::vector<Tensor>& x) { return ops::rope(x[0], 10000.0, 17); }, {{2, 37, 3, 64}}, dt, 8);
      compare([](const std::vector<Tensor>& x) { return ops::rope(x[0], 500.0, 0); }, {{2, 37, 4, 10}}, dt, 9);
      compare([](const std::vector<Tensor>& x) { return ops::swiglu(x[0]); }, {{37, 2000}}, dt, 10);
      compare([](const std::vector<Tensor>& x) { return ops::swiglu(x[0]); }, {{37, 2 * 4099}}, dt, 11);
      compare([](const std::vector<Tensor>& x) { return ops::softmax(x[0]); }, {{37, 1000}}, dt, 12);
      compare([](const std::vector<Tensor>& x) { return ops::softmax(x[0]); }, {{37, 4099}}, dt, 13);
    }
  }
}

TEST_CASE("pointwise ops cuda: cast f32 <-> bf16 runs on the device and its gradient comes back in f32", "[gpu][ops]") {
  Tensor x = Tensor::uniform({1000003}, 21, -3.0, 3.0, DType::F32, Device::cuda()).set_requires_grad(true);
  Tensor h = ops::cast(x, DType::BF16);
  REQUIRE(h.dtype() == DType::BF16);
  REQUIRE(h.device().is_cuda());
  const auto xv = x.to_float_vector(), hv = h.to_float_vector();
  for (size_t i = 0; i < xv.size(); ++i) REQUIRE(hv[i] == bf16_to_float(float_to_bf16(xv[i])));
  ops::sum(ops::cast(h, DType::F32)).backward();
  REQUIRE(x.grad().dtype() == DType::F32);
  for (double g : x.grad().to_double_vector()) REQUIRE(g == 1.0);
}

TEST_CASE("pointwise ops cuda: rope on a strided view of a fused projection", "[gpu][ops]") {
  for (DType dt : {DType::F32, DType::BF16}) {
    // k = heads 4..7 of a fused [B, T, 3*H, d] qkv buffer
    Tensor fused = Tensor::uniform({2, 37, 12, 64}, 31, -2.0, 2.0, dt, Device::cuda());
    Tensor k = fused.narrow(2, 4, 4);
    REQUIRE_FALSE(k.is_contiguous());
    k.set_requires_grad(true);
    Tensor k_cpu = k.detach().to(Device::cpu()).to(DType::F64).set_requires_grad(true);
    Tensor y = ops::rope(k, 10000.0, 5), y_cpu = ops::rope(k_cpu, 10000.0, 5);
    const double tol = dt == DType::F32 ? 1e-5 : 1e-2;
    CHECK(rel_l2(y.to_double_vector(), y_cpu.to_double_vector()) < tol);
    Tensor r = Tensor::uniform(y.shape(), 32, -1.0, 1.0, dt, Device::cuda());
    ops::sum(ops::mul(y, r)).backward();
    ops::sum(ops::mul(y_cpu, r.to(Device::cpu()).to(DType::F64))).backward();
    CHECK(rel_l2(k.grad().to_double_vector(), k_cpu.grad().to_double_vector()) < tol);
  }
}
