#include "nn/block.h"

#include "autograd/ops.h"

namespace moda::nn {

Block::Block(const ModelConfig& c, int64_t layer, const LayerSlots& slots)
    : placement_(c.norm),
      slots_(slots),
      attn_norm_(register_module<RMSNorm>("attn_norm", c.d_model, c.norm_eps)),
      attn_(register_module<MoDAAttention>("attn", c, slots)) {
  // Registration order fixes the order of parameters() and of the block's flat buffer.
  if (c.builds_attn_depth(layer))
    attn_depth_ = &register_module<DepthKVProjection>("attn_depth", c.d_model, c.kv_dim(), c.depth_kv_bias);
  mlp_norm_ = &register_module<RMSNorm>("mlp_norm", c.d_model, c.norm_eps);
  mlp_ = &register_module<SwiGLU>("mlp", c.d_model, c.ffn_hidden, c.bias);
  if (c.builds_ffn_depth(layer))
    ffn_depth_ = &register_module<DepthKVProjection>("ffn_depth", c.d_model, c.kv_dim(), c.depth_kv_bias);
}

Tensor Block::sublayer_input(const Tensor& x, const RMSNorm& norm) const {
  return placement_ == NormPlacement::Pre ? norm.forward(x) : x;
}

Tensor Block::sublayer_output(const Tensor& x, const Tensor& f, const RMSNorm& norm) const {
  switch (placement_) {
    case NormPlacement::Pre: return ops::add(x, f);
    case NormPlacement::Post: return norm.forward(ops::add(x, f));
    case NormPlacement::Reordered: return ops::add(x, norm.forward(f));
  }
  return Tensor();
}

Tensor Block::forward(const Tensor& x_in, StreamStep& step) const {
  Tensor h = sublayer_input(x_in, attn_norm_);
  if (attn_depth_ && slots_.attn_depth_slot >= 0) attn_depth_->write(h, attn_, step, slots_.attn_depth_slot);
  Tensor x = sublayer_output(x_in, attn_.forward(h, step), attn_norm_);

  h = sublayer_input(x, *mlp_norm_);
  if (ffn_depth_ && slots_.ffn_depth_slot >= 0) ffn_depth_->write(h, attn_, step, slots_.ffn_depth_slot);
  return sublayer_output(x, mlp_->forward(h), *mlp_norm_);
}

}  // namespace moda::nn
