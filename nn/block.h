#pragma once
// One transformer block: attention and SwiGLU sub-layers, each with its RMSNorm placed by
// config.norm, and the depth K,V projections of its variant. With h the sub-layer input:
//   pre        h = norm(x);  x = x + f(h)
//   post       h = x;        x = norm(x + f(h))
//   reordered  h = x;        x = x + norm(f(h))          (OLMo2)
// depth_kv_ffn(_attn): the FFN input h is projected to one more K,V pair (slot ffn_depth_slot);
// depth_kv_ffn_attn: the attention input too (slot attn_depth_slot). The last layer's are not
// computed (no later layer reads them).
// Parameters: attn_norm, attn.*, attn_depth.* (depth_kv_ffn_attn), mlp_norm, mlp.*, ffn_depth.*.
#include "nn/attention.h"

namespace moda::nn {

class Block : public Module {
 public:
  Block(const ModelConfig& c, int64_t layer, const LayerSlots& slots);
  Tensor forward(const Tensor& x, StreamStep& step) const;  // [B, T, D] -> [B, T, D]

 private:
  // x + f(h) with the norm where config.norm puts it; h is what f reads.
  Tensor sublayer_input(const Tensor& x, const RMSNorm& norm) const;
  Tensor sublayer_output(const Tensor& x, const Tensor& f, const RMSNorm& norm) const;

  NormPlacement placement_;
  LayerSlots slots_;
  RMSNorm& attn_norm_;
  MoDAAttention& attn_;
  DepthKVProjection* attn_depth_ = nullptr;
  RMSNorm* mlp_norm_ = nullptr;
  SwiGLU* mlp_ = nullptr;
  DepthKVProjection* ffn_depth_ = nullptr;
};

}  // namespace moda::nn
