// `moda params --config FILE [--json] [--set model.k=v ...] [--seq-len T]`: parameter counts and
// training FLOPs per token of a model config, computed analytically (nothing is allocated, so the
// paper's 700M models can be inspected anywhere). Formulas: docs/model.md.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/exit_codes.h"
#include "core/error.h"
#include "nn/model_config.h"

namespace {

std::string millions(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fM", static_cast<double>(n) / 1e6);
  return buf;
}

std::string grouped(int64_t n) {  // 705690624 -> "705,690,624"
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

int run_params(const std::vector<std::string>& argv) {
  moda::app::Args args(argv, {"config", "set", "seq-len"}, {"json"});
  const std::string path = args.get("config");
  const int64_t seq_len_flag = args.get_int("seq-len", 0);  // read before the file: usage errors first
  moda::nn::ModelConfig c = moda::nn::load_model_config(path, args.all("set"));
  const int64_t seq_len = args.has("seq-len") ? seq_len_flag : c.max_seq_len;
  MODA_USAGE_CHECK(seq_len >= 1, "FLOPs need a sequence length: pass --seq-len or set model.max_seq_len");

  const auto p = moda::nn::count_parameters(c);
  const auto f = moda::nn::training_flops_per_token(c, seq_len);
  if (args.has("json")) {
    nlohmann::json j = {{"config", path},
                        {"params", p.total},
                        {"non_embedding_params", p.non_embedding},
                        {"embedding_params", p.embedding},
                        {"block_params", p.per_block},
                        {"depth_projection_params", p.depth_projections},
                        {"unused_params", p.unused},
                        {"seq_len", seq_len},
                        {"flops_per_token", f.per_token()},
                        {"flops",
                         {{"dense", f.dense},
                          {"attention", f.attention},
                          {"attention_causal", f.attention_causal},
                          {"depth", f.depth},
                          {"lm_head_not_included", f.lm_head}}},
                        // What MFU divides by (docs/training.md): PaLM's convention and the causal count.
                        {"mfu_flops_per_token", {{"palm", f.palm_per_token()}, {"causal", f.causal_per_token()}}},
                        {"model", moda::nn::model_config_to_json(c)}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf(
      "model      %s, norm %s, %lld layers, d_model %lld, heads %lld/%lld (d %lld), ffn %lld, vocab %lld (%s)\n",
      moda::nn::variant_name(c.variant), moda::nn::norm_name(c.norm), (long long)c.n_layers, (long long)c.d_model,
      (long long)c.n_heads, (long long)c.n_kv_heads, (long long)c.head_dim, (long long)c.ffn_hidden,
      (long long)c.vocab_size, c.tie_embeddings ? "tied" : "untied");
  std::printf("params             %15s  (%s)\n", grouped(p.total).c_str(), millions(p.total).c_str());
  std::printf("  embedding        %15s\n", grouped(p.embedding).c_str());
  std::printf("  non-embedding    %15s\n", grouped(p.non_embedding).c_str());
  std::printf("  per block        %15s\n", grouped(p.per_block).c_str());
  std::printf("  depth projections%15s\n", grouped(p.depth_projections).c_str());
  if (p.unused) std::printf("  built, unused    %15s  (depth_proj_last_layer)\n", grouped(p.unused).c_str());
  std::printf(
      "training FLOPs/token at T = %lld: %.4g = dense %.4g + attention %.4g + depth %.4g"
      " (lm head %.4g not included)\n",
      (long long)seq_len, f.per_token(), f.dense, f.attention, f.depth, f.lm_head);
  std::printf(
      "MFU counts %.4g FLOPs/token (PaLM convention: lm head included, attention over all T keys);"
      " causal count %.4g (attention %.4g: the keys the causal kernels compute)\n",
      f.palm_per_token(), f.causal_per_token(), f.attention_causal);
  return 0;
}

}  // namespace

constexpr const char* kParamsUsage =
    R"(usage: moda params --config FILE [--json] [--set model.key=value]... [--seq-len T]
  Parameter counts and training FLOPs per token of a model config, computed without building it.
  --config FILE       JSON config with a "model" section
  --json              print the counts, FLOPs and resolved model config as JSON
  --set key=value     override one config field (as in moda train); repeatable
  --seq-len T         sequence length for the FLOPs (default model.max_seq_len)
)";

MODA_COMMAND("params", "parameter counts and training FLOPs per token of a model config", kParamsUsage, run_params);
