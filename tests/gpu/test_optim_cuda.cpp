// AdamW on CUDA with bf16 parameters: the optimiser keeps fp32 master weights and moments and
// writes the bf16 weights back after each step (docs/training.md). Checked against a step computed
// here in double from PyTorch's formula, and through a state save/load round trip.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <vector>

#include "core/bf16.h"
#include "core/safetensors.h"
#include "nn/optim.h"

using namespace moda;
namespace fs = std::filesystem;

namespace {

// bf16-representable values, so that the CUDA parameter starts exactly at these numbers.
std::vector<float> bf16_values(size_t n, uint64_t seed, double scale) {
  auto v = Tensor::randn({int64_t(n)}, seed).to_float_vector();
  for (auto& x : v) x = bf16_to_float(float_to_bf16(float(x * scale)));
  return v;
}

Tensor cuda_bf16(const std::vector<float>& v) {
  return Tensor::from_vector(v, {int64_t(v.size())}).to(DType::BF16).to(Device::cuda());
}

std::vector<float> master_of(const nn::AdamW& opt, const std::string& name) {
  for (const auto& [n, t] : opt.state())
    if (n == name + ".master") return t.to(Device::cpu()).to_float_vector();
  FAIL("no master weight " << name << ".master in the optimizer state");
  return {};
}

}  // namespace

TEST_CASE("adamw cuda: bf16 params are the rounded fp32 masters, which follow the closed-form step", "[gpu][train]") {
  const size_t n = 1000;
  const auto p0 = bf16_values(n, 1, 1.0), g0 = bf16_values(n, 2, 0.01), g1 = bf16_values(n, 3, 0.01);
  Tensor w = cuda_bf16(p0);
  AdamWParams hp;
  hp.weight_decay = 0.1;
  nn::AdamW opt({{"w", w, true}}, hp);
  const double lr = 1e-3;

  // Two steps, computed here in double: decay, moments, bias correction.
  std::vector<double> p(p0.begin(), p0.end()), m(n, 0.0), v(n, 0.0);
  for (int step = 1; step <= 2; ++step) {
    const auto& g = step == 1 ? g0 : g1;
    w.set_grad(cuda_bf16(g));
    opt.step(lr);
    for (size_t i = 0; i < n; ++i) {
      p[i] *= 1 - lr * hp.weight_decay;
      m[i] = hp.beta1 * m[i] + (1 - hp.beta1) * g[i];
      v[i] = hp.beta2 * v[i] + (1 - hp.beta2) * double(g[i]) * g[i];
      const double mhat = m[i] / (1 - std::pow(hp.beta1, step)), vhat = v[i] / (1 - std::pow(hp.beta2, step));
      p[i] -= lr * mhat / (std::sqrt(vhat) + hp.eps);
    }
    const auto master = master_of(opt, "w");
    const auto bf = w.to(Device::cpu()).to_float_vector();
    REQUIRE(master.size() == n);
    for (size_t i = 0; i < n; ++i) {
      INFO("step " << step << " element " << i);
      REQUIRE(master[i] == Approx(p[i]).epsilon(1e-5).margin(1e-7));
      // The bf16 weight is the master rounded to nearest even: not a bf16 value updated in place
      // (which would lose every update below half a bf16 ulp, as most of these are).
      REQUIRE(bf[i] == bf16_to_float(float_to_bf16(master[i])));
    }
  }
  // The updates were small against a bf16 ulp: had the bf16 weights been the state, most would not
  // have moved; the masters did.
  const auto master = master_of(opt, "w");
  size_t moved = 0;
  for (size_t i = 0; i < n; ++i) moved += master[i] != p0[i];
  REQUIRE(moved > n * 9 / 10);
}

TEST_CASE("adamw cuda: state save and load round trip continues bit for bit", "[gpu][train]") {
  const size_t n = 777;
  const auto p0 = bf16_values(n, 4, 1.0);
  AdamWParams hp;
  hp.weight_decay = 0.1;
  Tensor a = cuda_bf16(p0);
  nn::AdamW opt_a({{"w", a, true}}, hp);
  for (int s = 0; s < 3; ++s) {
    a.set_grad(cuda_bf16(bf16_values(n, 10 + s, 0.01)));
    opt_a.step(1e-3);
  }
  const fs::path file = fs::temp_directory_path() / ("moda_adamw_cuda_" + std::to_string(::getpid()) + ".safetensors");
  save_safetensors(file.string(), opt_a.state());

  // A fresh optimiser on a copy of the bf16 weights: loading restores masters, moments and step.
  Tensor b = cuda_bf16(a.to(Device::cpu()).to_float_vector());
  nn::AdamW opt_b({{"w", b, true}}, hp);
  opt_b.load_state(load_safetensors(file.string()));
  fs::remove(file);
  REQUIRE(opt_b.steps_taken() == 3);
  REQUIRE(master_of(opt_b, "w") == master_of(opt_a, "w"));
  for (int s = 3; s < 6; ++s) {
    const auto g = bf16_values(n, 10 + s, 0.01);
    a.set_grad(cuda_bf16(g));
    b.set_grad(cuda_bf16(g));
    opt_a.step(1e-3);
    opt_b.step(1e-3);
  }
  REQUIRE(master_of(opt_b, "w") == master_of(opt_a, "w"));
  REQUIRE(b.to(Device::cpu()).to_float_vector() == a.to(Device::cpu()).to_float_vector());
}
