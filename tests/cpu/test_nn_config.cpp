// Model config: validation messages, the paper's parameter counts (Table 3 to the printed 0.1M,
// Table 6 within 0.05%), the depth-stream slot layout and the FLOP formula.
#include <catch2/catch.hpp>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/error.h"
#include "nn/model_config.h"

using namespace moda;
using namespace moda::nn;

namespace {

nlohmann::json tiny_json() {
  return {{"vocab_size", 11}, {"d_model", 8},     {"n_layers", 2},    {"n_heads", 2},
          {"n_kv_heads", 1},  {"ffn_hidden", 12}, {"max_seq_len", 16}};
}

std::string error_of(const nlohmann::json& j) {
  try {
    model_config_from_json(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string paper(const std::string& name) { return std::string(MODA_SOURCE_DIR) + "/experiments/paper/" + name; }

}  // namespace

TEST_CASE("nn config: defaults resolve and round-trip through JSON", "[cpu][nn]") {
  ModelConfig c = model_config_from_json(tiny_json());
  CHECK(c.head_dim == 4);
  CHECK(c.n_kv_heads == 1);
  CHECK(c.variant == Variant::Sequence);
  CHECK(c.norm == NormPlacement::Pre);
  CHECK(c.tie_embeddings);
  auto j = tiny_json();
  j.erase("n_kv_heads");
  CHECK(model_config_from_json(j).n_kv_heads == 2);
  j["bias"] = true;
  CHECK(model_config_from_json(j).depth_kv_bias);  // follows bias unless given
  j["depth_kv_bias"] = false;
  CHECK_FALSE(model_config_from_json(j).depth_kv_bias);
  ModelConfig back = model_config_from_json(model_config_to_json(c));
  CHECK(model_config_to_json(back) == model_config_to_json(c));
}

TEST_CASE("nn config: every rule's error names the field, the value and the rule", "[cpu][nn]") {
  auto with = [](const char* k, nlohmann::json v) {
    auto j = tiny_json();
    j[k] = v;
    return j;
  };
  using Catch::Contains;
  CHECK_THAT(error_of(with("n_heads", 3)), Contains("model.n_heads") && Contains("3") && Contains("divide d_model"));
  CHECK_THAT(error_of(with("n_kv_heads", 3)), Contains("model.n_kv_heads") && Contains("must be in [1, n_heads"));
  auto j = tiny_json();
  j["n_heads"] = 4;
  j["n_kv_heads"] = 3;
  CHECK_THAT(error_of(j), Contains("model.n_kv_heads") && Contains("multiple of n_kv_heads"));
  CHECK_THAT(error_of(with("head_dim", 3)), Contains("model.head_dim") && Contains("even"));
  CHECK_THAT(error_of(with("vocab_size", 0)), Contains("model.vocab_size") && Contains(">= 1"));
  CHECK_THAT(error_of(with("d_model", -8)), Contains("model.d_model") && Contains("-8"));
  CHECK_THAT(error_of(with("n_layers", 0)), Contains("model.n_layers"));
  CHECK_THAT(error_of(with("ffn_hidden", 0)), Contains("model.ffn_hidden"));
  CHECK_THAT(error_of(with("rope_theta", -1.0)), Contains("model.rope_theta") && Contains("> 0"));
  CHECK_THAT(error_of(with("norm_eps", 0.0)), Contains("model.norm_eps"));
  CHECK_THAT(error_of(with("init_std", 0.0)), Contains("model.init_std"));
  CHECK_THAT(error_of(with("max_seq_len", -1)), Contains("model.max_seq_len"));
  CHECK_THAT(error_of(with("variant", "depth")),
             Contains("model.variant") && Contains("\"depth\"") && Contains("depth_kv_ffn_attn"));
  CHECK_THAT(error_of(with("norm", "sandwich")), Contains("model.norm") && Contains("pre | post | reordered"));
  CHECK_THAT(error_of(with("d_model", 8.5)), Contains("model.d_model") && Contains("integer"));
  CHECK_THAT(error_of(with("qk_norm", 1)), Contains("model.qk_norm") && Contains("true or false"));
  CHECK_THAT(error_of(with("rope_theta", "big")), Contains("model.rope_theta") && Contains("number"));
  CHECK_THAT(error_of(with("depth_proj_last_layer", true)), Contains("model.depth_proj_last_layer"));
  CHECK_THAT(error_of(with("n_layer", 2)), Contains("unknown field 'n_layer'"));
  auto missing = tiny_json();
  missing.erase("d_model");
  CHECK_THAT(error_of(missing), Contains("missing required field 'd_model'"));
}

TEST_CASE("nn config: the paper's Table 3 and Table 6 parameter counts", "[cpu][nn]") {
  // Table 3 (700M ablation): printed to 0.1M.
  struct Row {
    const char* file;
    double millions;
  };
  for (Row r : {Row{"table3-sequence-36l.json", 669.0}, Row{"table3-depth_kv.json", 669.0},
                Row{"table3-sequence-38l.json", 700.5}, Row{"table3-depth_kv_ffn.json", 705.7},
                Row{"table3-depth_kv_ffn_attn.json", 742.4}}) {
    auto p = count_parameters(load_model_config(paper(r.file)));
    INFO(r.file << ": " << p.total);
    CHECK(std::round(p.total / 1e5) / 10 == Approx(r.millions).epsilon(0).margin(1e-9));
  }
  // The +36.7M step: 35 projections of 2 * 1024 * 512 (the last layer's are not built).
  auto seq = count_parameters(load_model_config(paper("table3-sequence-36l.json")));
  auto ffn = count_parameters(load_model_config(paper("table3-depth_kv_ffn.json")));
  CHECK(ffn.total - seq.total == 35 * 2 * 1024 * 512);
  // Table 6 (width 384): within 0.05% (they are printed to 0.01M).
  for (Row r : {Row{"table6-48l-pre-sequence.json", 123.38}, Row{"table6-48l-post-sequence.json", 123.38},
                Row{"table6-48l-pre-depth_kv.json", 123.38}, Row{"table6-48l-post-depth_kv.json", 123.38},
                Row{"table6-48l-pre-depth_kv_ffn.json", 128.11}, Row{"table6-48l-post-depth_kv_ffn.json", 128.11},
                Row{"table6-24l-post-sequence.json", 71.35}, Row{"table6-24l-post-depth_kv.json", 71.35},
                Row{"table6-24l-post-depth_kv_ffn.json", 73.72}}) {
    auto p = count_parameters(load_model_config(paper(r.file)));
    INFO(r.file << ": " << p.total);
    CHECK(std::abs(p.total / 1e6 - r.millions) / r.millions < 5e-4);
  }
}

TEST_CASE("nn config: slot layout gives every layer a written depth prefix and its own slot", "[cpu][nn]") {
  for (Variant v : {Variant::Sequence, Variant::DepthKV, Variant::DepthKVFFN, Variant::DepthKVFFNAttn})
    for (int64_t L : {1, 2, 5}) {
      ModelConfig c = model_config_from_json(tiny_json());
      c.variant = v;
      c.n_layers = L;
      StreamLayout s = stream_layout(c);
      INFO(variant_name(v) << " L=" << L);
      std::set<int64_t> written;
      auto write = [&](int64_t slot) {
        REQUIRE(slot >= 0);
        REQUIRE(slot < s.num_slots);
        REQUIRE(written.insert(slot).second);  // each slot written once
      };
      for (int64_t l = 0; l < L; ++l) {
        const LayerSlots& ls = s.layers[l];
        for (int64_t j = 0; j < ls.num_depth; ++j) REQUIRE(written.count(j));  // written by earlier layers
        write(ls.seq_slot);
        REQUIRE(ls.seq_slot >= ls.num_depth);
        if (ls.attn_depth_slot >= 0) write(ls.attn_depth_slot);
        if (ls.ffn_depth_slot >= 0) write(ls.ffn_depth_slot);
        int64_t expect_depth = v == Variant::Sequence ? 0 : v == Variant::DepthKV ? l : 2 * l;
        CHECK(ls.num_depth == expect_depth);
        CHECK((ls.ffn_depth_slot >= 0) == (c.has_ffn_depth() && l + 1 < L));
        CHECK((ls.attn_depth_slot >= 0) == (c.has_attn_depth() && l + 1 < L));
      }
      CHECK(static_cast<int64_t>(written.size()) == s.num_slots);  // no slot wasted
    }
}

TEST_CASE("nn config: FLOPs per token follow the documented formula", "[cpu][nn]") {
  ModelConfig c = load_model_config(paper("table3-depth_kv.json"));
  auto f = training_flops_per_token(c, 4096);
  auto p = count_parameters(c);
  const double hd = 16 * 64;
  CHECK(f.dense == 6.0 * p.non_embedding);
  CHECK(f.attention == 12.0 * 36 * hd * 4096);
  CHECK(f.depth == 12.0 * hd * (36 * 35 / 2));
  CHECK(f.lm_head == 6.0 * 100278 * 1024);
  CHECK(f.per_token() == f.dense + f.attention + f.depth);
  c.variant = Variant::Sequence;
  CHECK(training_flops_per_token(c, 4096).depth == 0);
  // Built-but-unused projections count as parameters, not as FLOPs.
  ModelConfig t6 = load_model_config(paper("table6-48l-post-depth_kv_ffn.json"));
  auto p6 = count_parameters(t6);
  CHECK(p6.unused == 2 * (384 * 128 + 128));
  CHECK(training_flops_per_token(t6, 1).dense == 6.0 * (p6.non_embedding - p6.unused));
}
