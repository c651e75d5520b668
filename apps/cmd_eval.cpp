// moda eval --checkpoint DIR --data NAME=SHARDS... [--json] [--device D] [--batch N] [--seq-len T] [--no-verify]
//           [--dump-logits FILE]
#include <cstdio>

#include "apps/args.h"
#include "apps/checkpoint_model.h"
#include "apps/command.h"
#include "apps/exit_codes.h"
#include "autograd/graph.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "data/loader.h"
#include "distributed/checkpoint.h"
#include "distributed/evaluate.h"
#include "distributed/train_config.h"
#include "distributed/trainer.h"
#include "nn/language_model.h"

namespace moda::app {

// The logits of the first batch of the first set (by name), for comparison with another
// implementation (tests/cli/torch_bridge.sh, docs/interop.md): "ids" and "targets" [B, T] i32
// exactly as the evaluation reads them (a short last window padded with id 0, target -1) and
// "logits" [B, T, V] f32.
static void dump_first_batch_logits(const nn::LanguageModel& model, const std::string& set,
                                    const std::vector<std::string>& shards, int64_t seq_len, int64_t batch,
                                    Device device, const std::string& path) {
  data::LoaderOptions opts;
  opts.shards = shards;
  opts.batch_size = batch;
  opts.seq_len = seq_len;
  opts.vocab_size = static_cast<size_t>(model.config().vocab_size);
  data::EvalLoader loader(opts);
  Tensor ids = Tensor::empty({batch, seq_len}, DType::I32), targets = Tensor::empty({batch, seq_len}, DType::I32);
  MODA_CHECK(loader.next(ids.data<int32_t>(), targets.data<int32_t>()), "--dump-logits: set '", set, "' is empty");
  NoGradGuard no_grad;
  Tensor logits = model.logits(ids.to(device)).to(Device::cpu()).to(DType::F32);
  save_safetensors(path, {{"ids", ids}, {"targets", targets}, {"logits", logits}}, {{"set", set}});
}

static int run_eval(const std::vector<std::string>& argv) {
  Args args(argv, {"checkpoint", "data", "device", "batch", "seq-len", "dump-logits"}, {"json", "no-verify"});
  // The command line is checked whole before the checkpoint (slow, and a runtime error) is read.
  const std::string checkpoint = args.get("checkpoint");
  MODA_USAGE_CHECK(args.has("data"), "give at least one --data NAME=SHARDS");
  const int64_t batch = args.get_int("batch", 8);
  const int64_t seq_len_flag = args.get_int("seq-len", 0);  // 0: the checkpoint's data.seq_len
  MODA_USAGE_CHECK(batch >= 1, "--batch must be >= 1, got ", batch);
  MODA_USAGE_CHECK(seq_len_flag >= 1 || !args.has("seq-len"), "--seq-len must be >= 1, got ", seq_len_flag);
  for (const std::string& spec : args.all("data")) {
    const auto eq = spec.find('=');
    MODA_USAGE_CHECK(eq != std::string::npos && eq > 0, "--data '", spec, "': expected NAME=SHARDS (a path or glob)");
  }

  std::map<std::string, std::vector<std::string>> sets;  // a name given twice collects both patterns' shards
  for (const std::string& spec : args.all("data")) {
    const auto eq = spec.find('=');
    std::string name = spec.substr(0, eq);
    auto files = expand_shards(spec.substr(eq + 1), "--data " + name);
    auto& list = sets[name];
    list.insert(list.end(), files.begin(), files.end());
  }

  Device device = resolve_device(args.get_or("device", "auto"));
  CheckpointModel ck = load_checkpoint_model(checkpoint, device, /*verify=*/!args.has("no-verify"));
  const int64_t seq_len = seq_len_flag > 0 ? seq_len_flag : ck.config.at("data").value("seq_len", int64_t(256));
  if (args.has("dump-logits")) {
    const auto& [set, shards] = *sets.begin();
    dump_first_batch_logits(*ck.model, set, shards, seq_len, batch, device, args.get("dump-logits"));
  }
  EvalReport report = evaluate(*ck.model, sets, seq_len, batch, 0, device);
  if (args.has("json")) {
    std::printf("%s\n", report.to_json().dump().c_str());
  } else {
    std::printf("checkpoint %s\n%s", ck.dir.c_str(), report.table().c_str());
  }
  return 0;
}

constexpr const char* kEvalUsage =
    R"(usage: moda eval --checkpoint DIR --data NAME=SHARDS... [--json] [--device D] [--batch N] [--seq-len T] [--no-verify]
                 [--dump-logits FILE]
  Validation loss and perplexity of a checkpoint on named sets (token-weighted average).
  --checkpoint DIR    a run folder (its latest checkpoint) or a checkpoints/step-N folder
  --data NAME=SHARDS  a named set: a shard path or glob; repeatable
  --json              print {"sets": {NAME: {"loss", "ppl", "tokens"}}, "average": {same keys}}
  --device D          auto (default: GPU if present), cpu, cuda, cuda:N
  --batch N           sequences per forward (default 8)
  --seq-len T         sequence length (default: the checkpoint's data.seq_len)
  --no-verify         skip the SHA-256 check of the checkpoint's files (sizes are still checked)
  --dump-logits FILE  also write the first batch of the first set (by name) as safetensors: "ids",
                      "targets" [B, T] i32 and "logits" [B, T, V] f32 (to compare implementations)
)";

MODA_COMMAND("eval", "validation loss/perplexity: --checkpoint DIR --data NAME=SHARDS... [--json]", kEvalUsage,
             run_eval);

}  // namespace moda::app
