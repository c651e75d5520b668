#include "nn/optim.h"

#include <cmath>

#include <type_traits>

#include "autograd/dispatch.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/grad_norm.h"
#ifdef MODA_HAVE_CUDA
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/grad_norm.h"
#endif

namespace moda::nn {

AdamW::AdamW(std::vector<OptimParam> params, AdamWParams hyper) : hyper_(hyper) {
  hyper_.validate("AdamW");
  for (auto& p : params) {
    Slot s;
    s.p = p;
    Device dev = p.param.device();
    MODA_CHECK(p.param.is_contiguous(), "AdamW: parameter ", p.name, " is not contiguous");
    // The kernels' dtypes (checked here, before the first step): f32/f64 on the CPU, f32/bf16 on CUDA.
    if (dev.is_cpu())
      check_dtype("AdamW", p.param, {DType::F32, DType::F64}, p.name.c_str());
    else
      check_dtype("AdamW", p.param, {DType::F32, DType::BF16}, p.name.c_str());
    if (p.param.dtype() == DType::BF16) s.master = p.param.to(DType::F32);
    DType moment_dtype = p.param.dtype() == DType::F64 ? DType::F64 : DType::F32;
    s.exp_avg = Tensor::zeros(p.param.shape(), moment_dtype, dev);
    s.exp_avg_sq = Tensor::zeros(p.param.shape(), moment_dtype, dev);
    slots_.push_back(std::move(s));
  }
}

double AdamW::grad_norm() const {
  double sumsq = 0;
  // CPU gradients are reduced one by one; all CUDA gradients go into one deterministic reduction
  // (one sync) after the loop.
  MODA_IF_CUDA(std::vector<cuda::GradSpan> spans; Device cuda_device;)
  for (const auto& s : slots_) {
    Tensor g = s.p.param.grad();
    if (!g.defined()) continue;
    MODA_CHECK(g.is_contiguous(), "AdamW: gradient of ", s.p.name, " is not contiguous");
    const int64_t n = g.numel();
    ops::dispatch(
        "AdamW::grad_norm", g,
        [&](auto t) {
          using T = decltype(t);
          const T* b = g.data<T>();
          const double norm = cpu::grad_norm<T>(&b, &n, 1);
          sumsq += norm * norm;
        },
        [&](auto) {
          MODA_IF_CUDA(spans.push_back({g.data_ptr(), n, g.dtype() == DType::BF16}); cuda_device = g.device(););
        });
  }
  MODA_IF_CUDA(if (!spans.empty()) {
    Tensor norm = Tensor::empty({1}, DType::F32, cuda_device);
    cuda::grad_norm(spans.data(), static_cast<int64_t>(spans.size()), norm.data<float>(), nullptr, 0.0,
                    current_stream());
    const double total = norm.item();
    sumsq += total * total;
  })
  return std::sqrt(sumsq);
}

void AdamW::step(double lr, double grad_scale) {
  ++steps_;
  AdamWParams hp = hyper_;
  hp.lr = lr;
  hp.step = steps_;
  for (auto& s : slots_) {
    Tensor g = s.p.param.grad();
    if (!g.defined()) continue;  // unused this step: no update, like torch
    MODA_CHECK(g.is_contiguous() && g.shape() == s.p.param.shape(), "AdamW: gradient of ", s.p.name, " is ",
               g.describe(), ", expected contiguous ", shape_str(s.p.param.shape()));
    AdamWParams php = hp;
    if (!s.p.decay) php.weight_decay = 0;
    const int64_t n = s.p.param.numel();
    Tensor& p = s.p.param;
    ops::dispatch(
        "AdamW::step", p,
        [&](auto t) {  // the parameter is its own master; the gradient is read in its dtype
          using T = decltype(t);
          const Tensor gt = g.to(std::is_same_v<T, double> ? DType::F64 : DType::F32);
          cpu::adamw_step<T>(php, p.data<T>(), gt.data<T>(), s.exp_avg.data<T>(), s.exp_avg_sq.data<T>(), n, nullptr,
                             grad_scale);
        },
        [&](auto t) {
          using T [[maybe_unused]] = decltype(t);  // unused without CUDA
          MODA_IF_CUDA(
              if constexpr (std::is_same_v<T, bf16>) {  // fp32 master, bf16 copy written back
                // The gradient is bf16, or fp32 when micro-batches accumulate (ParamGroup::grad_dtype).
                auto step = [&](const auto* grad) {
                  cuda::adamw_step(php, s.master.data<float>(), grad, s.exp_avg.data<float>(),
                                   s.exp_avg_sq.data<float>(), n, p.data<bf16>(), grad_scale, current_stream());
                };
                g.dtype() == DType::F32 ? step(g.data<float>()) : step(g.data<bf16>());
              } else {
                cuda::adamw_step(php, p.data<float>(), g.to(DType::F32).data<float>(), s.exp_avg.data<float>(),
                                 s.exp_avg_sq.data<float>(), n, static_cast<bf16*>(nullptr), grad_scale,
                                 current_stream());
              });
        });
  }
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  for (const auto& s : slots_) {
    out.emplace_back(s.p.name + ".exp_avg", s.exp_avg);
    out.emplace_back(s.p.name + ".exp_avg_sq", s.exp_avg_sq);
    if (s.master.defined()) out.emplace_back(s.p.name + ".master", s.master);
  }
  out.emplace_back("__step__", Tensor::from_ints({steps_}, {1}, DType::I64));
  return out;
}

void AdamW::load_state(const SafetensorsFile& file) {
  auto get = [&](const std::string& name, const Tensor& like) {
    auto it = file.tensors.find(name);
    MODA_CHECK(it != file.tensors.end(), "optimizer state: tensor '", name, "' is missing");
    MODA_CHECK(it->second.shape() == like.shape(), "optimizer state: tensor '", name, "' has shape ",
               shape_str(it->second.shape()), ", expected ", shape_str(like.shape()));
    return it->second;
  };
  for (auto& s : slots_) {
    s.exp_avg.copy_(get(s.p.name + ".exp_avg", s.exp_avg));
    s.exp_avg_sq.copy_(get(s.p.name + ".exp_avg_sq", s.exp_avg_sq));
    if (s.master.defined()) s.master.copy_(get(s.p.name + ".master", s.master));
  }
  auto it = file.tensors.find("__step__");
  MODA_CHECK(it != file.tensors.end(), "optimizer state: '__step__' is missing");
  steps_ = it->second.to_int_vector().at(0);
}

}  // namespace moda::nn
