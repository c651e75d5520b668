#include "nn/optim.h"

#include <cmath>

#include "core/error.h"
#include "core/stream.h"
#include "kernels/cpu/grad_norm.h"
#ifdef MODA_HAVE_CUDA
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/grad_norm.h"
#endif

namespace moda {

AdamW::AdamW(std::vector<OptimParam> params, AdamWParams hyper) : hyper_(hyper) {
  hyper_.validate("AdamW");
  for (auto& p : params) {
    Slot s;
    s.p = p;
    Device dev = p.param.device();
    MODA_CHECK(p.param.is_contiguous(), "AdamW: parameter ", p.name, " is not contiguous");
    if (p.param.dtype() == DType::BF16) {
      s.master = p.param.to(DType::F32);
    } else {
      check_dtype("AdamW", p.param, {DType::F32, DType::F64}, p.name.c_str());
    }
    DType moment_dtype = p.param.dtype() == DType::F64 ? DType::F64 : DType::F32;
    s.exp_avg = Tensor::zeros(p.param.shape(), moment_dtype, dev);
    s.exp_avg_sq = Tensor::zeros(p.param.shape(), moment_dtype, dev);
    slots_.push_back(std::move(s));
  }
}

double AdamW::grad_norm() const {
  double sumsq = 0;
#ifdef MODA_HAVE_CUDA
  std::vector<cuda::GradSpan> spans;  // all CUDA gradients: one deterministic reduction, one sync
  Device cuda_device;
#endif
  for (const auto& s : slots_) {
    Tensor g = s.p.param.grad();
    if (!g.defined()) continue;
    MODA_CHECK(g.is_contiguous(), "AdamW: gradient of ", s.p.name, " is not contiguous");
    const int64_t n = g.numel();
    if (g.device().is_cpu()) {
      double norm;
      if (g.dtype() == DType::F64) {
        const double* b = g.data<double>();
        norm = cpu::grad_norm<double>(&b, &n, 1);
      } else {
        Tensor f = g.to(DType::F32);
        const float* b = f.data<float>();
        norm = cpu::grad_norm<float>(&b, &n, 1);
      }
      sumsq += norm * norm;
      continue;
    }
#ifdef MODA_HAVE_CUDA
    check_dtype("AdamW::grad_norm", g, {DType::F32, DType::BF16}, s.p.name.c_str());
    spans.push_back({g.data_ptr(), n, g.dtype() == DType::BF16});
    cuda_device = g.device();
#endif
  }
#ifdef MODA_HAVE_CUDA
  if (!spans.empty()) {
    Tensor norm = Tensor::empty({1}, DType::F32, cuda_device);
    cuda::grad_norm(spans.data(), static_cast<int64_t>(spans.size()), norm.data<float>(), nullptr, 0.0,
                    current_stream());
    double n = norm.item();
    sumsq += n * n;
  }
#endif
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
    if (p.device().is_cpu()) {
      if (p.dtype() == DType::F64)
        cpu::adamw_step<double>(php, p.data<double>(), g.to(DType::F64).data<double>(), s.exp_avg.data<double>(),
                                s.exp_avg_sq.data<double>(), n, nullptr, grad_scale);
      else
        cpu::adamw_step<float>(php, p.data<float>(), g.to(DType::F32).data<float>(), s.exp_avg.data<float>(),
                               s.exp_avg_sq.data<float>(), n, nullptr, grad_scale);
      continue;
    }
#ifdef MODA_HAVE_CUDA
    if (p.dtype() == DType::BF16) {
      cuda::adamw_step(php, s.master.data<float>(), g.data<bf16>(), s.exp_avg.data<float>(), s.exp_avg_sq.data<float>(),
                       n, p.data<bf16>(), grad_scale, current_stream());
    } else {
      cuda::adamw_step(php, p.data<float>(), g.to(DType::F32).data<float>(), s.exp_avg.data<float>(),
                       s.exp_avg_sq.data<float>(), n, static_cast<bf16*>(nullptr), grad_scale, current_stream());
    }
#else
    MODA_FAIL("AdamW: CUDA parameters need the CUDA AdamW kernel, which this build lacks");
#endif
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

}  // namespace moda
