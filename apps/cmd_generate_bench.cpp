// `moda bench generate`: decoding throughput of `moda generate`'s path (nn::generate: prefill, then
// one token per step through the KV + depth cache) at several batch sizes, on a model built from a
// config with random weights (or a checkpoint). Prompts are random ids of one length; every row
// generates exactly --new-tokens tokens (no end token). Greedy by default, so the sampler's
// softmax does not enter the timing unless asked for (--temperature).
#include <spdlog/spdlog.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/checkpoint_model.h"
#include "apps/command.h"
#include "apps/exit_codes.h"
#include "core/error.h"
#include "core/rng.h"
#include "distributed/trainer.h"
#include "nn/generate.h"

namespace moda::app {
namespace {

std::vector<int64_t> parse_batches(const std::string& list) {
  std::vector<int64_t> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    long long b = 0;
    try {
      b = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    MODA_USAGE_CHECK(used == item.size() && b >= 1, "--batch: '", item, "' in '", list,
                     "' is not a batch size >= 1 (give a comma-separated list, e.g. 1,32)");
    out.push_back(b);
  }
  MODA_USAGE_CHECK(!out.empty(), "--batch: no batch size given");
  return out;
}

std::vector<std::vector<int64_t>> random_prompts(int64_t batch, int64_t len, int64_t vocab, uint64_t seed) {
  std::vector<std::vector<int64_t>> p(static_cast<size_t>(batch), std::vector<int64_t>(static_cast<size_t>(len)));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < len; ++t)
      p[b][t] = int64_t(rng::philox(seed, uint64_t(b * len + t)).v[0] % uint64_t(vocab));
  return p;
}

int run_bench_generate(const std::vector<std::string>& argv) {
  Args args(argv,
            {"config", "checkpoint", "set", "device", "batch", "prompt-len", "new-tokens", "temperature", "top-k",
             "top-p", "seed"},
            {"json", "no-verify"});
  MODA_USAGE_CHECK(args.has("config") != args.has("checkpoint"), "give --config FILE or --checkpoint DIR");
  MODA_USAGE_CHECK(!args.has("set") || args.has("config"), "--set needs --config");
  const std::vector<int64_t> batches = parse_batches(args.get_or("batch", "1,32"));
  const int64_t prompt_len = args.get_int("prompt-len", 128), new_tokens = args.get_int("new-tokens", 128);
  MODA_USAGE_CHECK(prompt_len >= 1 && new_tokens >= 2, "--prompt-len must be >= 1 and --new-tokens >= 2, got ",
                   prompt_len, " and ", new_tokens);
  nn::GenerateOptions opt;
  opt.max_new_tokens = new_tokens;
  opt.sampling.temperature = args.get_double("temperature", 0.0);
  opt.sampling.top_k = args.get_int("top-k", 0);
  opt.sampling.top_p = args.get_double("top-p", 1.0);
  opt.sampling.seed = uint64_t(args.get_int("seed", 0));
  try {
    opt.sampling.validate();
  } catch (const Error& e) {
    throw UsageError(std::string("--") + e.what());
  }

  Device device = resolve_device(args.get_or("device", "auto"));
  std::unique_ptr<nn::LanguageModel> model;
  std::string source;
  if (args.has("config")) {
    source = args.get("config");
    model = nn::make_language_model(nn::load_model_config(source, args.all("set")),
                                    nn::ModelInit{1, device, device.is_cuda() ? DType::BF16 : DType::F32});
  } else {
    CheckpointModel ck = load_checkpoint_model(args.get("checkpoint"), device, !args.has("no-verify"));
    source = ck.dir, model = std::move(ck.model);
  }
  const nn::ModelConfig& c = model->config();
  MODA_CHECK(c.max_seq_len == 0 || prompt_len + new_tokens - 1 <= c.max_seq_len, "--prompt-len ", prompt_len,
             " + --new-tokens ", new_tokens, " - 1 exceed model.max_seq_len = ", c.max_seq_len);
  spdlog::info("bench generate: {} ({} layers, d_model {}, {}), device {}, {}", source, c.n_layers, c.d_model,
               nn::variant_name(c.variant), device.str(), dtype_name(model->dtype()));

  // Warm-up (allocator caches, kernel attributes, cuBLAS handles) at the largest batch, short.
  {
    nn::GenerateOptions warm = opt;
    warm.max_new_tokens = 2;
    nn::generate(*model, random_prompts(batches.back(), std::min<int64_t>(prompt_len, 8), c.vocab_size, 7), warm);
  }
  nlohmann::json rows = nlohmann::json::array();
  if (!args.has("json"))
    std::printf("%6s %7s %7s %11s %12s %15s %15s\n", "batch", "prompt", "new", "prefill_ms", "ms_per_step",
                "decode_tok/s", "total_tok/s");
  for (int64_t batch : batches) {
    nn::Generation g = nn::generate(*model, random_prompts(batch, prompt_len, c.vocab_size, 1), opt);
    const double step_ms = g.steps > 0 ? 1e3 * g.decode_seconds / double(g.steps) : 0.0;
    // Decode throughput: the tokens produced by the decode steps (each row one per step).
    const double decode_rate = g.decode_seconds > 0 ? double(batch * g.steps) / g.decode_seconds : 0.0;
    const double total_rate = double(g.generated()) / (g.prefill_seconds + g.decode_seconds);
    if (args.has("json")) {
      rows.push_back({{"batch", batch},
                      {"prompt_len", prompt_len},
                      {"new_tokens", new_tokens},
                      {"prefill_s", g.prefill_seconds},
                      {"decode_s", g.decode_seconds},
                      {"steps", g.steps},
                      {"ms_per_step", step_ms},
                      {"decode_tokens_per_s", decode_rate},
                      {"total_tokens_per_s", total_rate}});
    } else {
      std::printf("%6lld %7lld %7lld %11.2f %12.3f %15.1f %15.1f\n", (long long)batch, (long long)prompt_len,
                  (long long)new_tokens, 1e3 * g.prefill_seconds, step_ms, decode_rate, total_rate);
      std::fflush(stdout);
    }
  }
  if (args.has("json"))
    std::printf("%s\n", nlohmann::json{{"model", source},
                                       {"device", device.str()},
                                       {"dtype", dtype_name(model->dtype())},
                                       {"params", nn::count_parameters(c).total},
                                       {"runs", rows}}
                            .dump()
                            .c_str());
  return kExitOk;
}

constexpr const char* kBenchGenerateUsage =
    R"(usage: moda bench generate (--config FILE [--set model.K=V...] | --checkpoint DIR) [--device D]
                           [--batch 1,32] [--prompt-len 128] [--new-tokens 128] [--temperature 0]
                           [--top-k K] [--top-p P] [--seed S] [--json] [--no-verify]
  Tokens/s of generation (prefill + one token per step through the KV + depth cache, the path of
  `moda generate`) per batch size, on random prompt ids; every row generates --new-tokens tokens.
  Table: prefill_ms, ms_per_step, decode_tok/s (batch x steps / decode time), total_tok/s (all new
  tokens / prefill + decode time).
  --config FILE       build the model from this config with random weights (seed 1; bf16 on CUDA)
  --set model.K=V     override a config field; repeatable
  --checkpoint DIR    or load a trained model (run folder or checkpoints/step-N)
  --device D          auto (default: GPU if present), cpu, cuda, cuda:N
  --batch LIST        comma-separated batch sizes (default 1,32)
  --prompt-len N      prompt tokens per row (default 128)
  --new-tokens N      new tokens per row, >= 2 (default 128)
  --temperature T     0 = greedy (default); with T > 0 the sampler's softmax is timed too
  --top-k K, --top-p P, --seed S   sampling as in `moda generate`
  --json              {"model", "device", "dtype", "params", "runs": [{"batch", "prompt_len",
                      "new_tokens", "prefill_s", "decode_s", "steps", "ms_per_step",
                      "decode_tokens_per_s", "total_tokens_per_s"}]}
  --no-verify         with --checkpoint: skip the SHA-256 check of its files
)";

}  // namespace

MODA_COMMAND("bench generate", "tokens/s of generation through the KV + depth cache at several batch sizes",
             kBenchGenerateUsage, run_bench_generate);

}  // namespace moda::app
