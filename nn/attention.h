#pragma once
// MoDA attention of one layer: GQA projections, optional QK-norm, RoPE, and attention over this
// layer's sequence K,V plus the depth K,V of earlier layers, all read from the depth stream.
//   q = rope(q_norm(x Wq^T)),  k = rope(k_norm(x Wk^T)),  v = x Wv^T          (per head: d)
//   (k, v) -> stream slot `seq_slot`;  o = MoDA(q, slot seq_slot, depth slots [0, num_depth))
//   out = o Wo^T
// Parameters: q_proj, k_proj, v_proj [*, D], o_proj [D, Hq*d]; q_norm [Hq*d], k_norm [Hk*d]
// (OLMo2's QK-norm over the whole projection) when qk_norm.
#include "nn/depth_stream.h"
#include "nn/layers.h"
#include "nn/model_config.h"

namespace moda::nn {

class MoDAAttention : public Module {
 public:
  MoDAAttention(const ModelConfig& c, const LayerSlots& slots);
  Tensor forward(const Tensor& x, StreamStep& step) const;  // x [B, T, D] -> [B, T, D]

  // Every key this layer writes into the stream (its sequence keys and its depth projections'
  // keys) goes through the same key norm and RoPE at its own token position, so that a depth key
  // scores against q like that token's sequence key would: k [B, T, Hk*d] -> [B, T, Hk, d].
  // `position` is the absolute position of token 0 (non-zero when decoding after a cached prefix).
  Tensor prepare_key(const Tensor& k, int64_t position) const;
  Tensor prepare_value(const Tensor& v) const;  // [B, T, Hk*d] -> [B, T, Hk, d]

 private:
  int64_t heads_, kv_heads_, head_dim_;
  double rope_theta_;
  LayerSlots slots_;
  Linear& q_proj_;
  Linear& k_proj_;
  Linear& v_proj_;
  Linear& o_proj_;
  RMSNorm* q_norm_ = nullptr;
  RMSNorm* k_norm_ = nullptr;
};

// A depth K,V projection (the FFN input's in depth_kv_ffn, also the attention input's in
// depth_kv_ffn_attn): k_proj, v_proj [Hk*d, D], one more K,V pair for later layers to read.
class DepthKVProjection : public Module {
 public:
  DepthKVProjection(int64_t dim, int64_t kv_dim, bool bias);
  // Projects x [B, T, D], prepares the key like `attn` does, writes the pair into `slot`.
  void write(const Tensor& x, const MoDAAttention& attn, StreamStep& step, int64_t slot) const;

 private:
  Linear& k_proj_;
  Linear& v_proj_;
};

}  // namespace moda::nn
