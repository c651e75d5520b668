#pragma once
// The plain layers. Each forward is one or two calls into the differentiable op library.
// Parameter names (relative to the layer): Linear "weight" [out, in] and "bias" [out];
// Embedding "weight" [vocab, dim]; RMSNorm "weight" [dim]; SwiGLU "gate_up_proj.*", "down_proj.*".
#include "nn/module.h"

namespace moda::nn {

// Differentiable reshape (a view when x is contiguous): the gradient is reshaped back. The op
// library has none, and a plain Tensor::view would cut the graph.
Tensor reshape(const Tensor& x, const Shape& shape);

class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias);
  Tensor forward(const Tensor& x) const;  // [..., in] -> [..., out]
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias

 private:
  Tensor weight_, bias_;
};

class Embedding : public Module {
 public:
  Embedding(int64_t vocab, int64_t dim);
  Tensor forward(const Tensor& ids) const;  // ids (i32/i64, any shape) -> [..., dim]
  const Tensor& weight() const { return weight_; }

 private:
  Tensor weight_;
};

class RMSNorm : public Module {
 public:
  RMSNorm(int64_t dim, double eps);
  Tensor forward(const Tensor& x) const;  // over the last dimension, times the (ones-initialised) weight

 private:
  Tensor weight_;
  double eps_;
};

// SwiGLU feed-forward: down(silu(gate(x)) * up(x)); gate and up are one fused [2h, D] projection
// whose output is laid out [gate | up] as ops::swiglu expects.
class SwiGLU : public Module {
 public:
  SwiGLU(int64_t dim, int64_t hidden, bool bias);
  Tensor forward(const Tensor& x) const;

 private:
  Linear& gate_up_;
  Linear& down_;
};

}  // namespace moda::nn
