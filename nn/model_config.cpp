#include "nn/model_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_config.h"

namespace moda::nn {

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::Sequence: return "sequence";
    case Variant::DepthKV: return "depth_kv";
    case Variant::DepthKVFFN: return "depth_kv_ffn";
    case Variant::DepthKVFFNAttn: return "depth_kv_ffn_attn";
  }
  return "?";
}

const char* norm_name(NormPlacement n) {
  switch (n) {
    case NormPlacement::Pre: return "pre";
    case NormPlacement::Post: return "post";
    case NormPlacement::Reordered: return "reordered";
  }
  return "?";
}

bool ModelConfig::builds_ffn_depth(int64_t layer) const {
  return has_ffn_depth() && (computes_depth_proj(layer) || depth_proj_last_layer);
}
bool ModelConfig::builds_attn_depth(int64_t layer) const {
  return has_attn_depth() && (computes_depth_proj(layer) || depth_proj_last_layer);
}

void ModelConfig::validate() {
  auto fail = [](const char* field, auto value, const std::string& rule) {
    MODA_FAIL("model.", field, ": value ", value, " is invalid: ", rule);
  };
  if (vocab_size < 1) fail("vocab_size", vocab_size, "must be >= 1");
  if (d_model < 1) fail("d_model", d_model, "must be >= 1");
  if (n_layers < 1) fail("n_layers", n_layers, "must be >= 1");
  if (n_heads < 1) fail("n_heads", n_heads, "must be >= 1");
  if (n_kv_heads == 0) n_kv_heads = n_heads;
  if (n_kv_heads < 1 || n_kv_heads > n_heads)
    fail("n_kv_heads", n_kv_heads, "must be in [1, n_heads = " + std::to_string(n_heads) + "]");
  if (n_heads % n_kv_heads != 0)
    fail("n_kv_heads", n_kv_heads,
         "n_heads (" + std::to_string(n_heads) + ") must be a multiple of n_kv_heads (grouped-query attention)");
  if (head_dim == 0) {
    if (d_model % n_heads != 0)
      fail("n_heads", n_heads, "must divide d_model (" + std::to_string(d_model) + ") when head_dim is not given");
    head_dim = d_model / n_heads;
  }
  if (head_dim < 2 || head_dim % 2 != 0) fail("head_dim", head_dim, "must be even and >= 2 (rotary embedding)");
  if (ffn_hidden < 1) fail("ffn_hidden", ffn_hidden, "must be >= 1");
  if (!(rope_theta > 0)) fail("rope_theta", rope_theta, "must be > 0");
  if (!(norm_eps > 0)) fail("norm_eps", norm_eps, "must be > 0");
  if (!(init_std > 0)) fail("init_std", init_std, "must be > 0");
  if (max_seq_len < 0) fail("max_seq_len", max_seq_len, "must be >= 1, or 0 for no limit");
  if (depth_proj_last_layer && !has_ffn_depth())
    fail("depth_proj_last_layer", "true",
         std::string("applies only to the variants with depth projections (depth_kv_ffn, depth_kv_ffn_attn), not ") +
             variant_name(variant));
}

// --- JSON -------------------------------------------------------------------------------------

namespace {

int64_t read_int(FieldReader& r, const std::string& field, const int64_t* fallback) {
  if (!r.has(field)) {
    if (fallback) {
      r.get<int64_t>(field, 0);  // marks it known
      return *fallback;
    }
    return r.require<int64_t>(field);  // throws "missing required field"
  }
  const auto& v = r.raw(field);
  r.check(v.is_number_integer(), field, v.dump(), "must be an integer");
  return v.get<int64_t>();
}

double read_double(FieldReader& r, const std::string& field, double fallback) {
  if (!r.has(field)) return r.get<double>(field, fallback);
  const auto& v = r.raw(field);
  r.check(v.is_number(), field, v.dump(), "must be a number");
  return v.get<double>();
}

bool read_bool(FieldReader& r, const std::string& field, bool fallback) {
  if (!r.has(field)) return r.get<bool>(field, fallback);
  const auto& v = r.raw(field);
  r.check(v.is_boolean(), field, v.dump(), "must be true or false");
  return v.get<bool>();
}

template <typename E>
E read_enum(FieldReader& r, const std::string& field, E fallback, std::initializer_list<E> choices,
            const char* (*name)(E)) {
  if (!r.has(field)) {
    r.get<std::string>(field, "");
    return fallback;
  }
  const auto& v = r.raw(field);
  std::string list;
  for (E c : choices) list += std::string(list.empty() ? "" : " | ") + name(c);
  r.check(v.is_string(), field, v.dump(), "must be one of " + list);
  for (E c : choices)
    if (v.get<std::string>() == name(c)) return c;
  r.check(false, field, v.dump(), "must be one of " + list);
  return fallback;
}

}  // namespace

ModelConfig model_config_from_json(const nlohmann::json& j) {
  FieldReader r(j, "model");
  ModelConfig c;
  const int64_t zero = 0;
  c.vocab_size = read_int(r, "vocab_size", nullptr);
  c.d_model = read_int(r, "d_model", nullptr);
  c.n_layers = read_int(r, "n_layers", nullptr);
  c.n_heads = read_int(r, "n_heads", nullptr);
  c.n_kv_heads = read_int(r, "n_kv_heads", &zero);
  if (r.has("n_kv_heads") && c.n_kv_heads == 0) r.check(false, "n_kv_heads", 0, "must be >= 1");
  c.head_dim = read_int(r, "head_dim", &zero);
  if (r.has("head_dim") && c.head_dim == 0) r.check(false, "head_dim", 0, "must be even and >= 2");
  c.ffn_hidden = read_int(r, "ffn_hidden", nullptr);
  c.max_seq_len = read_int(r, "max_seq_len", &zero);
  c.variant =
      read_enum(r, "variant", Variant::Sequence,
                {Variant::Sequence, Variant::DepthKV, Variant::DepthKVFFN, Variant::DepthKVFFNAttn}, variant_name);
  c.norm = read_enum(r, "norm", NormPlacement::Pre, {NormPlacement::Pre, NormPlacement::Post, NormPlacement::Reordered},
                     norm_name);
  c.qk_norm = read_bool(r, "qk_norm", false);
  c.bias = read_bool(r, "bias", false);
  c.depth_kv_bias = read_bool(r, "depth_kv_bias", c.bias);  // follows `bias` unless given
  c.tie_embeddings = read_bool(r, "tie_embeddings", true);
  c.depth_proj_last_layer = read_bool(r, "depth_proj_last_layer", false);
  c.rope_theta = read_double(r, "rope_theta", 10000.0);
  c.norm_eps = read_double(r, "norm_eps", 1e-6);
  c.init_std = read_double(r, "init_std", 0.02);
  r.finish();
  c.validate();
  return c;
}

nlohmann::json model_config_to_json(const ModelConfig& c) {
  return {{"vocab_size", c.vocab_size},
          {"d_model", c.d_model},
          {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads},
          {"head_dim", c.head_dim},
          {"ffn_hidden", c.ffn_hidden},
          {"variant", variant_name(c.variant)},
          {"norm", norm_name(c.norm)},
          {"qk_norm", c.qk_norm},
          {"bias", c.bias},
          {"depth_kv_bias", c.depth_kv_bias},
          {"tie_embeddings", c.tie_embeddings},
          {"depth_proj_last_layer", c.depth_proj_last_layer},
          {"rope_theta", c.rope_theta},
          {"norm_eps", c.norm_eps},
          {"max_seq_len", c.max_seq_len},
          {"init_std", c.init_std}};
}

ModelConfig load_model_config(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json doc = read_json_file(path);
  for (const auto& o : overrides) apply_override(doc, o);
  MODA_CHECK(doc.is_object() && doc.contains("model"), path, ": no \"model\" section (expected {\"model\": {...}})");
  try {
    return model_config_from_json(doc.at("model"));
  } catch (const Error& e) {
    MODA_FAIL(path, ": ", e.what());
  }
}

// --- slot layout ------------------------------------------------------------------------------

StreamLayout stream_layout(const ModelConfig& c) {
  const int64_t L = c.n_layers;
  StreamLayout s;
  s.layers.resize(L);
  for (int64_t l = 0; l < L; ++l) {
    LayerSlots& ls = s.layers[l];
    switch (c.variant) {
      case Variant::Sequence:  // slot l: layer l's K,V; nobody else reads it
        ls.seq_slot = l;
        break;
      case Variant::DepthKV:  // slot l: layer l's K,V, read by layer l and as depth by layers > l
        ls.seq_slot = l;
        ls.num_depth = l;
        break;
      case Variant::DepthKVFFN:  // slot 2l: attention K,V of layer l; slot 2l+1: its FFN K,V
        ls.seq_slot = 2 * l;
        ls.num_depth = 2 * l;
        if (c.computes_depth_proj(l)) ls.ffn_depth_slot = 2 * l + 1;
        break;
      case Variant::DepthKVFFNAttn:  // depth pairs first (2l, 2l+1), sequence K,V after all of them
        ls.seq_slot = 2 * (L - 1) + l;
        ls.num_depth = 2 * l;
        if (c.computes_depth_proj(l)) ls.attn_depth_slot = 2 * l, ls.ffn_depth_slot = 2 * l + 1;
        break;
    }
  }
  switch (c.variant) {
    case Variant::Sequence:
    case Variant::DepthKV: s.num_slots = L; break;
    case Variant::DepthKVFFN: s.num_slots = 2 * L - 1; break;
    case Variant::DepthKVFFNAttn: s.num_slots = 3 * L - 2; break;
  }
  return s;
}

// --- counting ---------------------------------------------------------------------------------

ParamCount count_parameters(const ModelConfig& c) {
  const int64_t D = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), h = c.ffn_hidden;
  auto linear = [](int64_t in, int64_t out, bool bias) { return in * out + (bias ? out : 0); };
  int64_t attn = linear(D, qd, c.bias) + 2 * linear(D, kvd, c.bias) + linear(qd, D, c.bias);
  if (c.qk_norm) attn += qd + kvd;
  int64_t mlp = linear(D, 2 * h, c.bias) + linear(h, D, c.bias);
  int64_t norms = 2 * D;
  int64_t depth_pair = 2 * linear(D, kvd, c.depth_kv_bias);

  ParamCount p;
  p.per_block = attn + mlp + norms;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    int64_t built = (c.builds_ffn_depth(l) ? depth_pair : 0) + (c.builds_attn_depth(l) ? depth_pair : 0);
    p.depth_projections += built;
    if (!c.computes_depth_proj(l)) p.unused += built;
  }
  p.embedding = c.vocab_size * D * (c.tie_embeddings ? 1 : 2);
  p.total = p.embedding + c.n_layers * p.per_block + p.depth_projections + D /* final_norm */;
  p.non_embedding = p.total - p.embedding;
  return p;
}

FlopCount training_flops_per_token(const ModelConfig& c, int64_t seq_len) {
  ParamCount p = count_parameters(c);
  StreamLayout s = stream_layout(c);
  int64_t depth_entries = 0;
  for (const auto& ls : s.layers) depth_entries += ls.num_depth;
  const double hd = static_cast<double>(c.n_heads) * c.head_dim;
  FlopCount f;
  f.dense = 6.0 * static_cast<double>(p.non_embedding - p.unused);
  f.attention = 12.0 * c.n_layers * hd * static_cast<double>(seq_len);
  f.attention_causal = 12.0 * c.n_layers * hd * (static_cast<double>(seq_len) + 1) / 2;
  f.depth = 12.0 * hd * static_cast<double>(depth_entries);
  f.lm_head = 6.0 * static_cast<double>(c.vocab_size) * c.d_model;
  return f;
}

}  // namespace moda::nn
