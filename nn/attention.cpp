#include "nn/attention.h"

#include "autograd/ops.h"

namespace moda::nn {

MoDAAttention::MoDAAttention(const ModelConfig& c, const LayerSlots& slots)
    : heads_(c.n_heads),
      kv_heads_(c.n_kv_heads),
      head_dim_(c.head_dim),
      rope_theta_(c.rope_theta),
      slots_(slots),
      q_proj_(register_module<Linear>("q_proj", c.d_model, c.q_dim(), c.bias)),
      k_proj_(register_module<Linear>("k_proj", c.d_model, c.kv_dim(), c.bias)),
      v_proj_(register_module<Linear>("v_proj", c.d_model, c.kv_dim(), c.bias)),
      o_proj_(register_module<Linear>("o_proj", c.q_dim(), c.d_model, c.bias)) {
  if (c.qk_norm) {
    q_norm_ = &register_module<RMSNorm>("q_norm", c.q_dim(), c.norm_eps);
    k_norm_ = &register_module<RMSNorm>("k_norm", c.kv_dim(), c.norm_eps);
  }
}

Tensor MoDAAttention::prepare_key(const Tensor& k, int64_t position) const {
  Tensor kn = k_norm_ ? k_norm_->forward(k) : k;
  return ops::rope(reshape(kn, {k.size(0), k.size(1), kv_heads_, head_dim_}), rope_theta_, position);
}

Tensor MoDAAttention::prepare_value(const Tensor& v) const {
  return reshape(v, {v.size(0), v.size(1), kv_heads_, head_dim_});
}

Tensor MoDAAttention::forward(const Tensor& x, StreamStep& step) const {
  const int64_t B = x.size(0), T = x.size(1);
  Tensor q = q_proj_.forward(x);
  if (q_norm_) q = q_norm_->forward(q);
  q = ops::rope(reshape(q, {B, T, heads_, head_dim_}), rope_theta_, step.position());
  step.write(slots_.seq_slot, prepare_key(k_proj_.forward(x), step.position()), prepare_value(v_proj_.forward(x)));
  Tensor o = step.attend(q, slots_.seq_slot, slots_.num_depth, /*causal=*/true);
  return o_proj_.forward(reshape(o, {B, T, heads_ * head_dim_}));
}

DepthKVProjection::DepthKVProjection(int64_t dim, int64_t kv_dim, bool bias)
    : k_proj_(register_module<Linear>("k_proj", dim, kv_dim, bias)),
      v_proj_(register_module<Linear>("v_proj", dim, kv_dim, bias)) {}

void DepthKVProjection::write(const Tensor& x, const MoDAAttention& attn, StreamStep& step, int64_t slot) const {
  step.write(slot, attn.prepare_key(k_proj_.forward(x), step.position()), attn.prepare_value(v_proj_.forward(x)));
}

}  // namespace moda::nn
