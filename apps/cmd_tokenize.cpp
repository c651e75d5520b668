// `moda tokenize train|encode|decode`: thin wrappers over data/ (tokenizer, corpus, shards).
// Only `decode` writes data (the text) to stdout; the others report on stderr.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/exit_codes.h"
#include "core/error.h"
#include "data/corpus.h"
#include "data/io.h"
#include "data/shard.h"
#include "data/tokenizer.h"

namespace moda::app {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int tokenize_train(const std::vector<std::string>& argv) {
  Args args(argv, {"input", "vocab-size", "out", "special", "min-frequency"});
  const auto inputs = args.all("input");
  MODA_USAGE_CHECK(!inputs.empty(), "give the training text with --input FILE...");
  const long long vocab = args.get_int("vocab-size", -1);
  MODA_USAGE_CHECK(vocab > 0, "--vocab-size N is required (N > 256)");
  const std::string out = args.get("out");
  data::BpeTrainOptions opt;
  if (args.has("special")) opt.special_tokens = args.all("special");
  const long long min_freq = args.get_int("min-frequency", 2);
  MODA_USAGE_CHECK(min_freq >= 1, "--min-frequency ", min_freq, " must be >= 1");
  opt.min_frequency = uint64_t(min_freq);

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (const auto& path : inputs) {
    texts.push_back(data::read_file(path, "input text"));
    MODA_CHECK(!texts.back().empty(), "input file '", path, "' is empty");
    bytes += texts.back().size();
  }
  auto tok = data::Tokenizer::train(texts, size_t(vocab), opt);
  tok.save(out);
  spdlog::info("trained {}: vocabulary {} ({} merges) from {} bytes in {} file(s), {:.2f} s", out, tok.vocab_size(),
               tok.num_merges(), bytes, inputs.size(), seconds_since(t0));
  return 0;
}

int tokenize_encode(const std::vector<std::string>& argv) {
  Args args(argv, {"tokenizer", "input", "out", "val-fraction", "shard-tokens", "threads"});
  const auto inputs = args.all("input");
  MODA_USAGE_CHECK(!inputs.empty(), "give the text with --input FILE...");
  const std::string out = args.get("out");
  data::EncodeOptions opt;
  opt.val_fraction = args.get_double("val-fraction", 0.0);
  MODA_USAGE_CHECK(opt.val_fraction >= 0.0 && opt.val_fraction < 1.0, "--val-fraction ", opt.val_fraction,
                   " must be in [0, 1)");
  const long long shard_tokens = args.get_int("shard-tokens", 100'000'000);
  MODA_USAGE_CHECK(shard_tokens >= 1, "--shard-tokens ", shard_tokens, " must be >= 1");
  opt.shard_tokens = size_t(shard_tokens);
  const long long threads = args.get_int("threads", 0);
  MODA_USAGE_CHECK(threads >= 0, "--threads ", threads, " must be >= 0");
  opt.threads = unsigned(threads);
  const auto tok = data::Tokenizer::load(args.get("tokenizer"));
  const auto stats = data::encode_corpus(tok, inputs, out, opt);
  spdlog::info("encoded {} bytes -> {} train tokens ({} shard(s)), {} val tokens ({} shard(s)), {:.2f} s, {:.1f} MB/s",
               stats.bytes, stats.train_tokens, stats.train_shards.size(), stats.val_tokens, stats.val_shards.size(),
               stats.seconds, stats.bytes / 1e6 / std::max(stats.seconds, 1e-9));
  return 0;
}

int tokenize_decode(const std::vector<std::string>& argv) {
  Args args(argv, {"tokenizer", "input"});
  const auto inputs = args.all("input");
  MODA_USAGE_CHECK(!inputs.empty(), "give the shards with --input SHARD...");
  const auto tok = data::Tokenizer::load(args.get("tokenizer"));
  for (const auto& path : inputs) {
    data::ShardView shard(path);
    shard.validate(tok.vocab_size());
    std::vector<uint32_t> ids;
    for (size_t pos = 0; pos < shard.size();) {  // in blocks: shards can be large
      const size_t n = std::min<size_t>(1 << 20, shard.size() - pos);
      ids.resize(n);
      shard.read(pos, n, ids.data());
      const std::string text = tok.decode(ids);
      MODA_CHECK(std::fwrite(text.data(), 1, text.size(), stdout) == text.size(), "cannot write to stdout");
      pos += n;
    }
  }
  MODA_CHECK(std::fflush(stdout) == 0, "cannot write to stdout");
  return 0;
}

}  // namespace

constexpr const char* kTrainUsage =
    R"(usage: moda tokenize train --input FILE... --vocab-size N --out tokenizer.json [--special TOKEN...] [--min-frequency N]
  Trains a byte-level BPE tokenizer (docs/data-formats.md) and writes it as a HuggingFace tokenizer.json.
  --input FILE...     training text files (UTF-8)
  --vocab-size N      vocabulary size including the 256 byte tokens and the special tokens (N > 256)
  --out FILE          where to write tokenizer.json
  --special TOKEN...  special tokens (default <|endoftext|>)
  --min-frequency N   a pair must occur at least N times to be merged (default 2)
)";

constexpr const char* kEncodeUsage =
    R"(usage: moda tokenize encode --tokenizer FILE --input FILE... --out PREFIX [--val-fraction F] [--shard-tokens N] [--threads N]
  Encodes text into llm.c token shards PREFIX_train_000000.bin ... and PREFIX_val_000000.bin ...
  --tokenizer FILE    tokenizer.json
  --input FILE...     text files; each file's part starts with <|endoftext|>
  --out PREFIX        shard path prefix
  --val-fraction F    the last fraction F of each file (from a line start) goes to the val shards
                      (default 0)
  --shard-tokens N    tokens per shard (default 100000000)
  --threads N         encoding threads (default 0: one per core)
)";

constexpr const char* kDecodeUsage = R"(usage: moda tokenize decode --tokenizer FILE --input SHARD...
  Writes the text of token shards to stdout.
  --tokenizer FILE    tokenizer.json
  --input SHARD...    llm.c token shards, decoded in the order given
)";

MODA_COMMAND("tokenize train", "train a byte-level BPE tokenizer: --input FILE... --vocab-size N --out tokenizer.json",
             kTrainUsage, tokenize_train);
MODA_COMMAND("tokenize encode", "text -> token shards: --tokenizer T --input FILE... --out PREFIX [--val-fraction F]",
             kEncodeUsage, tokenize_encode);
MODA_COMMAND("tokenize decode", "print the text of shards: --tokenizer T --input SHARD...", kDecodeUsage,
             tokenize_decode);

}  // namespace moda::app
