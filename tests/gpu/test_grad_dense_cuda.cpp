// Differentiable dense ops on CUDA against the same ops on the CPU (float64, on the same rounded
// inputs): forward outputs and every input gradient for a random output seed.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "autograd/dense_ops.h"
#include "core/tensor.h"
#include "tests/compare.h"

using moda::Device;
using moda::DType;
using moda::Shape;
using moda::Tensor;

using moda::test::rel_l2;

namespace {

Tensor rand_tensor(const Shape& s, uint64_t seed, DType t) {
  // Rounded to t first, so CPU (f64) and CUDA see identical values.
  return Tensor::randn(s, seed, DType::F64).to(t).to(DType::F64);
}

// Runs f on CPU f64 copies and on CUDA copies in dtype t; compares output and input gradients.
void compare(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs, DType t,
             double tol) {
  std::vector<Tensor> cpu, gpu;
  for (const Tensor& x : inputs) {
    const bool fl = moda::is_floating(x.dtype());
    Tensor c = x.clone(), g = (fl ? x.to(t) : x).to(Device::cuda());
    if (fl) c.set_requires_grad(true), g.set_requires_grad(true);
    cpu.push_back(c), gpu.push_back(g);
  }
  Tensor oc = f(cpu), og = f(gpu);
  CHECK(rel_l2(og, oc) < tol);
  Tensor seed = Tensor::randn(oc.shape(), 777, DType::F64).to(og.dtype()).to(DType::F64);
  oc.backward(seed);
  og.backward(seed.to(og.dtype()).to(Device::cuda()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!moda::is_floating(inputs[i].dtype())) continue;
    INFO("gradient of input " << i << " " << inputs[i].describe());
    REQUIRE(gpu[i].grad().defined());
    CHECK(rel_l2(gpu[i].grad(), cpu[i].grad()) < tol);
  }
}

}  // namespace

TEMPLATE_TEST_CASE_SIG("dense ops cuda: matmul, linear, embedding, cross-entropy, attention match the CPU",
                       "[gpu][ops]", ((int D), D), 0, 1) {
  const DType t = D == 0 ? DType::F32 : DType::BF16;
  const double tol = D == 0 ? 1e-5 : 1e-2;
  INFO("dtype " << (D == 0 ? "f32" : "bf16"));
  uint64_t s = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      INFO("trans_a=" << ta << " trans_b=" << tb);
      auto f = [&](const std::vector<Tensor>& x) { return moda::ops::matmul(x[0], x[1], ta, tb); };
      const Shape as = ta ? Shape{3, 37, 41} : Shape{3, 41, 37}, bs = tb ? Shape{29, 37} : Shape{37, 29};
      compare(f, {rand_tensor(as, s++, t), rand_tensor({3, bs[0], bs[1]}, s++, t)}, t, tol);
      compare(f, {rand_tensor(as, s++, t), rand_tensor(bs, s++, t)}, t, tol);  // shared 2-D b
    }
  auto lin = [](const std::vector<Tensor>& x) { return moda::ops::linear(x[0], x[1], x[2]); };
  compare(lin, {rand_tensor({2, 57, 33}, 20, t), rand_tensor({45, 33}, 21, t), rand_tensor({45}, 22, t)}, t, tol);

  Tensor ids = Tensor::from_ints({5, 1, 5, 0, 1000, 5, 77}, {7}, DType::I64);
  auto emb = [&](const std::vector<Tensor>& x) {
    return moda::ops::embedding(x[0], x[0].device().is_cpu() ? ids : ids.to(Device::cuda()));
  };
  compare(emb, {rand_tensor({1001, 19}, 30, t)}, t, tol);

  Tensor targets = Tensor::from_ints({3, -1, 1000, 0, 7}, {5}, DType::I32);
  auto ce = [&](const std::vector<Tensor>& x) {
    return moda::ops::cross_entropy(x[0], x[0].device().is_cpu() ? targets : targets.to(Device::cuda()));
  };
  compare(ce, {rand_tensor({5, 1001}, 40, t)}, t, tol);

  auto att = [](const std::vector<Tensor>& x) { return moda::ops::attention_reference(x[0], x[1], x[2], true); };
  compare(att,
          {rand_tensor({2, 17, 6, 16}, 50, t), rand_tensor({2, 17, 2, 16}, 51, t), rand_tensor({2, 17, 2, 16}, 52, t)},
          t, tol);
}
