#include "nn/layers.h"

#include "autograd/function.h"
#include "autograd/ops.h"

namespace moda::nn {

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor y = x.reshape(shape);
  Shape in_shape = x.shape();
  return record_op("reshape", {x}, {y},
                   [in_shape](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].reshape(in_shape)}; })[0];
}

Linear::Linear(int64_t in, int64_t out, bool bias) {
  weight_ = register_parameter("weight", {out, in}, Init::Normal, /*decay=*/true);
  if (bias) bias_ = register_parameter("bias", {out}, Init::Zeros, /*decay=*/false);
}

Tensor Linear::forward(const Tensor& x) const { return ops::linear(x, weight_, bias_); }

Embedding::Embedding(int64_t vocab, int64_t dim) {
  weight_ = register_parameter("weight", {vocab, dim}, Init::Normal, /*decay=*/true);
}

Tensor Embedding::forward(const Tensor& ids) const { return ops::embedding(weight_, ids); }

RMSNorm::RMSNorm(int64_t dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", {dim}, Init::Ones, /*decay=*/false);
}

Tensor RMSNorm::forward(const Tensor& x) const { return ops::rms_norm(x, weight_, eps_); }

SwiGLU::SwiGLU(int64_t dim, int64_t hidden, bool bias)
    : gate_up_(register_module<Linear>("gate_up_proj", dim, 2 * hidden, bias)),
      down_(register_module<Linear>("down_proj", hidden, dim, bias)) {}

Tensor SwiGLU::forward(const Tensor& x) const { return down_.forward(ops::swiglu(gate_up_.forward(x))); }

}  // namespace moda::nn
