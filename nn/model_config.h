#pragma once
// The model's configuration (the "model" section of a JSON config) and what follows from it
// without building the model: the depth-stream slot layout, analytic parameter counts and training
// FLOPs per token. Counting is closed-form so that a 700M config can be inspected on a laptop; a
// test holds the counts against real (small) models of every variant.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace moda::nn {

// The paper's ablation (SPEC.md section 3), in order of what each adds.
enum class Variant { Sequence, DepthKV, DepthKVFFN, DepthKVFFNAttn };
// Where the RMSNorm of each sub-layer f sits: pre x + f(norm(x)); post norm(x + f(x));
// reordered (OLMo2) x + norm(f(x)).
enum class NormPlacement { Pre, Post, Reordered };

const char* variant_name(Variant v);
const char* norm_name(NormPlacement n);

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // 0 in JSON-less construction means "= n_heads" (resolved by validate())
  int64_t head_dim = 0;    // 0 means d_model / n_heads
  int64_t ffn_hidden = 0;  // SwiGLU hidden width h (the gate/up projection is 2h wide)
  Variant variant = Variant::Sequence;
  NormPlacement norm = NormPlacement::Pre;
  bool qk_norm = false;        // RMSNorm over the whole q projection [Hq*d] and k projection [Hk*d]
  bool bias = false;           // biases on every linear map of the blocks
  bool depth_kv_bias = false;  // biases on the depth K,V projections (FFN / attention inputs)
  bool tie_embeddings = true;  // logits use embed.weight; otherwise a separate lm_head.weight
  // Build the last layer's depth projections too, although no later layer reads them. They are
  // never computed (the forward skips them); the flag exists because the paper's Table 6 counts
  // include them while its Table 3 counts do not (see docs/model.md).
  bool depth_proj_last_layer = false;
  double rope_theta = 10000.0;
  double norm_eps = 1e-6;
  int64_t max_seq_len = 0;  // longest sequence the model is meant for (FLOPs use it); 0: no limit
  double init_std = 0.02;

  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  int64_t q_dim() const { return n_heads * head_dim; }
  bool has_ffn_depth() const { return variant == Variant::DepthKVFFN || variant == Variant::DepthKVFFNAttn; }
  bool has_attn_depth() const { return variant == Variant::DepthKVFFNAttn; }
  // Whether layer l builds its FFN (resp. attention-input) depth projections.
  bool builds_ffn_depth(int64_t layer) const;
  bool builds_attn_depth(int64_t layer) const;
  // Whether layer l computes them (built and read by a later layer).
  bool computes_depth_proj(int64_t layer) const { return layer + 1 < n_layers; }

  // Resolves defaults (n_kv_heads, head_dim) and checks every rule; errors read
  // "model.<field>: value <v> is invalid: <rule>".
  void validate();
};

// Parses the "model" object (unknown fields are errors naming the field) and validates it.
ModelConfig model_config_from_json(const nlohmann::json& model_section);
nlohmann::json model_config_to_json(const ModelConfig& c);
// Reads a config file: its "model" section, after `--set`-style overrides (e.g.
// "model.n_layers=24") are applied to the whole document.
ModelConfig load_model_config(const std::string& path, const std::vector<std::string>& overrides = {});

// --- depth-stream slot layout ----------------------------------------------------------------
// One K and one V buffer [B, T, S, Hk, d] per step hold every K,V pair the network writes. Layer l
// reads its own sequence K,V from slot `seq_slot` and its depth entries from slots
// [0, num_depth): the slots are ordered so that those are always a prefix.
struct LayerSlots {
  int64_t seq_slot = 0;          // this layer's attention K,V (the sequence keys it attends to)
  int64_t num_depth = 0;         // depth entries it reads: slots [0, num_depth)
  int64_t attn_depth_slot = -1;  // depth_kv_ffn_attn: the separate K,V projection of its attention input
  int64_t ffn_depth_slot = -1;   // depth_kv_ffn(_attn): the K,V projection of its FFN input
};
struct StreamLayout {
  int64_t num_slots = 0;
  std::vector<LayerSlots> layers;
};
StreamLayout stream_layout(const ModelConfig& c);

// --- counting --------------------------------------------------------------------------------
struct ParamCount {
  int64_t total = 0;
  int64_t embedding = 0;          // embed.weight (+ lm_head.weight when untied)
  int64_t non_embedding = 0;      // total - embedding
  int64_t per_block = 0;          // a block without depth projections
  int64_t depth_projections = 0;  // all depth K,V projections built
  int64_t unused = 0;             // built but never computed (depth_proj_last_layer)
};
ParamCount count_parameters(const ModelConfig& c);

// Training FLOPs per token at sequence length `seq_len` (forward + backward = 3x forward):
//   dense     6 * (non_embedding - unused)             every weight: one multiply-add per token, x3
//   attention 12 * n_layers * Hq * d * seq_len         q.k and p.v over all T keys (PaLM convention,
//                                                      causal masking not discounted)
//   depth     12 * Hq * d * sum_l num_depth(l)         q.k and p.v over the depth entries
//   flops_per_token = dense + attention + depth; lm_head (6 * V * D) is reported apart.
// MFU uses palm_per_token() (PaLM, Chowdhery et al. 2022, appendix B; llm.c does the same): every
// weight including the LM head, attention over all T keys. causal_per_token() counts what the
// causal kernels compute instead: query t reads t + 1 keys, (T + 1) / 2 on average.
struct FlopCount {
  double dense = 0, attention = 0, attention_causal = 0, depth = 0, lm_head = 0;
  double per_token() const { return dense + attention + depth; }
  double palm_per_token() const { return dense + attention + depth + lm_head; }
  double causal_per_token() const { return dense + attention_causal + depth + lm_head; }
};
FlopCount training_flops_per_token(const ModelConfig& c, int64_t seq_len);

}  // namespace moda::nn
