// moda generate --checkpoint X --prompt TEXT... | --prompt-file F [--max-new-tokens N] [--temperature T]
//   [--top-k K] [--top-p P] [--seed S] [--device D] [--tokenizer FILE] [--json] [--no-verify]
// Text continuation of one or more prompts with a trained model, through the decode cache
// (nn/generate.h, docs/generate.md). One prompt: the continuation streams to stdout as it is
// produced. Several: each completion is printed once all are done. --json: one object per prompt.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/checkpoint_model.h"
#include "apps/command.h"
#include "apps/exit_codes.h"
#include "apps/utf8_stream.h"
#include "core/error.h"
#include "data/tokenizer.h"
#include "distributed/trainer.h"
#include "nn/generate.h"

namespace moda::app {
namespace {

namespace fs = std::filesystem;

// The prompts of --prompt-file: a JSON array of strings (prompts may then hold newlines), else one
// prompt per line, blank lines skipped.
std::vector<std::string> read_prompt_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MODA_CHECK(in.good(), "--prompt-file ", path, ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::string> prompts;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      MODA_CHECK(false, "--prompt-file ", path, ": not a JSON list of strings: ", e.what());
    }
    for (size_t i = 0; i < j.size(); ++i) {
      MODA_CHECK(j[i].is_string(), "--prompt-file ", path, ": element ", i, " is not a string: ", j[i].dump());
      prompts.push_back(j[i].get<std::string>());
    }
  } else {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) prompts.push_back(line);
    }
  }
  MODA_CHECK(!prompts.empty(), "--prompt-file ", path, ": holds no prompt");
  return prompts;
}

// --tokenizer, else tokenizer.json in the folder given as --checkpoint or in the run folder of a
// RUN/checkpoints/step-N folder.
std::string find_tokenizer(const std::string& flag, const std::string& checkpoint_arg, const std::string& ck_dir) {
  if (!flag.empty()) return flag;
  std::vector<fs::path> candidates = {fs::path(checkpoint_arg) / "tokenizer.json",
                                      fs::path(ck_dir).parent_path().parent_path() / "tokenizer.json"};
  std::string looked;
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c)) return c.string();
    looked += (looked.empty() ? "" : ", ") + c.string();
  }
  MODA_CHECK(false, "no tokenizer: give --tokenizer FILE (looked for ", looked, ")");
  return {};
}

struct Request {
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> ids;
};

Request encode_prompts(const std::vector<std::string>& texts, const data::Tokenizer& tok, int64_t eot) {
  Request r{texts, {}};
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> ids;
    for (uint32_t id : tok.encode(texts[i])) ids.push_back(int64_t(id));
    if (ids.empty()) {  // an empty prompt starts a new document
      MODA_CHECK(eot >= 0, "prompt ", i, " is empty and the tokenizer has no ", data::Tokenizer::kEndOfText);
      ids.push_back(eot);
    }
    r.ids.push_back(std::move(ids));
  }
  return r;
}

std::string text_of(const data::Tokenizer& tok, const std::vector<int64_t>& ids, int64_t eot) {
  std::vector<uint32_t> u;
  for (int64_t id : ids)
    if (id != eot) u.push_back(uint32_t(id));
  return tok.decode(u);
}

int run_generate(const std::vector<std::string>& argv) {
  Args args(argv,
            {"checkpoint", "prompt", "prompt-file", "max-new-tokens", "temperature", "top-k", "top-p", "seed", "device",
             "tokenizer"},
            {"json", "no-verify"});
  // The whole command line is checked before the checkpoint (slow, and a runtime error) is read.
  const std::string checkpoint = args.get("checkpoint");
  MODA_USAGE_CHECK(args.has("prompt") != args.has("prompt-file"), "give --prompt TEXT (repeatable) or --prompt-file F");
  nn::GenerateOptions opt;
  opt.max_new_tokens = args.get_int("max-new-tokens", 64);
  opt.sampling.temperature = args.get_double("temperature", 1.0);
  opt.sampling.top_k = args.get_int("top-k", 0);
  opt.sampling.top_p = args.get_double("top-p", 1.0);
  const long long seed = args.get_int("seed", 0);
  MODA_USAGE_CHECK(opt.max_new_tokens >= 1, "--max-new-tokens must be >= 1, got ", opt.max_new_tokens);
  MODA_USAGE_CHECK(seed >= 0, "--seed must be >= 0, got ", seed);
  opt.sampling.seed = uint64_t(seed);
  try {
    opt.sampling.validate();
  } catch (const Error& e) {
    throw UsageError(std::string("--") + e.what());
  }
  const bool json = args.has("json");

  std::vector<std::string> texts = args.has("prompt") ? args.all("prompt") : read_prompt_file(args.get("prompt-file"));
  Device device = resolve_device(args.get_or("device", "auto"));
  CheckpointModel ck = load_checkpoint_model(checkpoint, device, /*verify=*/!args.has("no-verify"));
  const std::string tok_path = find_tokenizer(args.get_or("tokenizer", ""), checkpoint, ck.dir);
  data::Tokenizer tok = data::Tokenizer::load(tok_path);
  MODA_CHECK(int64_t(tok.vocab_size()) <= ck.model->config().vocab_size, "tokenizer ", tok_path, " has ",
             tok.vocab_size(), " tokens, more than the model's vocab_size ", ck.model->config().vocab_size);
  const auto eot_id = tok.token_to_id(data::Tokenizer::kEndOfText);
  opt.end_token = eot_id ? int64_t(*eot_id) : -1;
  Request req = encode_prompts(texts, tok, opt.end_token);
  spdlog::info("generate: checkpoint {}, {} prompt(s), device {}, tokenizer {}", ck.dir, texts.size(), device.str(),
               tok_path);

  // One prompt and no --json: stream whole UTF-8 characters as the tokens arrive.
  const bool stream = !json && texts.size() == 1;
  std::string pending;
  auto on_token = [&](size_t, int64_t id) {
    if (id == opt.end_token) return;
    pending += tok.decode(std::vector<uint32_t>{uint32_t(id)});
    const size_t n = utf8_printable_prefix(pending);
    std::fwrite(pending.data(), 1, n, stdout);
    std::fflush(stdout);
    pending.erase(0, n);
  };
  nn::Generation g = nn::generate(*ck.model, req.ids, opt, stream ? nn::TokenCallback(on_token) : nn::TokenCallback());
  const double seconds = g.prefill_seconds + g.decode_seconds;
  const double batch_rate = seconds > 0 ? double(g.generated()) / seconds : 0.0;

  if (stream) {
    std::fwrite(pending.data(), 1, pending.size(), stdout);  // an unfinished character at the very end
    std::printf("\n");
  }
  for (size_t i = 0; i < texts.size() && !stream; ++i) {
    const std::string text = text_of(tok, g.tokens[i], opt.end_token);
    if (json) {
      nlohmann::json j = {{"prompt", texts[i]},
                          {"prompt_ids", req.ids[i]},
                          {"ids", g.tokens[i]},
                          {"text", text},
                          {"finish_reason", g.ended[i] ? "end_of_text" : "max_new_tokens"},
                          {"tokens", g.tokens[i].size()},
                          {"seconds", seconds},
                          {"tokens_per_s", seconds > 0 ? double(g.tokens[i].size()) / seconds : 0.0},
                          {"batch", texts.size()},
                          {"batch_tokens_per_s", batch_rate}};
      // Generated bytes need not be valid UTF-8: JSON gets U+FFFD for invalid ones.
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("%s[%zu] %s%s\n", i ? "\n" : "", i, texts[i].c_str(), text.c_str());
    }
  }
  std::fflush(stdout);
  spdlog::info("generated {} tokens in {:.3f} s ({:.1f} tokens/s; prefill {:.3f} s, {} decode steps)", g.generated(),
               seconds, batch_rate, g.prefill_seconds, g.steps);
  return kExitOk;
}

constexpr const char* kGenerateUsage =
    R"(usage: moda generate --checkpoint DIR (--prompt TEXT... | --prompt-file F) [--max-new-tokens N]
                     [--temperature T] [--top-k K] [--top-p P] [--seed S] [--device D] [--tokenizer FILE]
                     [--json] [--no-verify]
  Continues prompts with a trained model (KV + depth cache, docs/generate.md). One prompt: the
  continuation streams to stdout; several: "[i] PROMPT CONTINUATION" blocks when all are done.
  Stops at N new tokens or <|endoftext|>. Logs (timing, tokens/s) go to stderr.
  --checkpoint DIR     a run folder (its latest checkpoint) or a checkpoints/step-N folder
  --prompt TEXT        a prompt; repeat the option for a batch
  --prompt-file F      one prompt per line (blank lines skipped), or a JSON list of strings
  --max-new-tokens N   new tokens per prompt (default 64)
  --temperature T      0 = greedy (argmax); default 1
  --top-k K            sample among the K most likely tokens (default 0: all)
  --top-p P            nucleus: the smallest most-likely set reaching probability P (default 1)
  --seed S             sampling seed (default 0): the same seed gives the same sample
  --device D           auto (default: GPU if present), cpu, cuda, cuda:N
  --tokenizer FILE     tokenizer.json (default: tokenizer.json in the run folder)
  --json               one object per prompt and line: prompt, prompt_ids, ids, text, finish_reason
                       (end_of_text | max_new_tokens), tokens, seconds, tokens_per_s, batch,
                       batch_tokens_per_s
  --no-verify          skip the SHA-256 check of the checkpoint's files
)";

}  // namespace

MODA_COMMAND("generate", "text generation from a checkpoint: --checkpoint DIR --prompt TEXT [--json]", kGenerateUsage,
             run_generate);

}  // namespace moda::app
