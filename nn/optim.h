#pragma once
// AdamW over a model's parameters. On the CPU the parameters (f32/f64) are the master weights. On
// the GPU the model computes in bf16: the optimiser keeps fp32 master weights and moments, and each
// step writes the updated bf16 weights back into the model's tensors (one fused kernel per tensor).
// Weight decay is decoupled and applies only to parameters flagged `decay` (not norms or biases).
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "core/tensor.h"
#include "kernels/adamw_shape.h"
#include "kernels/grad_norm_shape.h"

namespace moda::nn {

struct OptimParam {
  std::string name;
  Tensor param;  // the model's tensor (its .grad is read at step time)
  bool decay = true;
};

// The gradient multiplier that clips the global norm to max_norm: min(1, max_norm / (norm + 1e-6)),
// the rule the CPU and CUDA grad-norm kernels apply too (kernels/grad_norm_shape.h).
using moda::clip_coefficient;

class AdamW {
 public:
  AdamW(std::vector<OptimParam> params, AdamWParams hyper);

  // Global L2 norm of all gradients (parameters without a gradient count as zero).
  double grad_norm() const;
  // One step at learning rate `lr`; every gradient is multiplied by `grad_scale` first. Clipping to
  // max_norm: step(lr, clip_coefficient(grad_norm(), max_norm)).
  void step(double lr, double grad_scale = 1.0);
  int64_t steps_taken() const { return steps_; }

  // Moments, master weights and step count, for checkpoints ("<name>.exp_avg", "<name>.exp_avg_sq",
  // "<name>.master" when the model is bf16; metadata "step").
  NamedTensors state() const;
  void load_state(const SafetensorsFile& file);  // errors name the missing or mismatched tensor

  const AdamWParams& hyper() const { return hyper_; }

 private:
  struct Slot {
    OptimParam p;
    Tensor master;  // fp32 copy for bf16 params; undefined when the param is its own master
    Tensor exp_avg, exp_avg_sq;
  };
  std::vector<Slot> slots_;
  AdamWParams hyper_;
  int64_t steps_ = 0;
};

}  // namespace moda::nn
