// `moda tokenize train|encode|decode`: thin wrappers over data/ (tokenizer, corpus, shards).
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

#include "apps/args.h"
#include "apps/command.h"
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
  MODA_CHECK(!inputs.empty(), "tokenize train: give the training text with --input FILE...");
  const long long vocab = args.get_int("vocab-size", -1);
  MODA_CHECK(vocab > 0, "tokenize train: --vocab-size N is required (N > 256)");
  const std::string out = args.get("out");
  data::BpeTrainOptions opt;
  if (args.has("special")) opt.special_tokens = args.all("special");
  const long long min_freq = args.get_int("min-frequency", 2);
  MODA_CHECK(min_freq >= 1, "tokenize train: --min-frequency ", min_freq, " must be >= 1");
  opt.min_frequency = uint64_t(min_freq);

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (const auto& path : inputs) {
    texts.push_back(data::read_file(path, "input text"));
    MODA_CHECK(!texts.back().empty(), "tokenize train: input file '", path, "' is empty");
    bytes += texts.back().size();
  }
  auto tok = data::Tokenizer::train(texts, size_t(vocab), opt);
  tok.save(out);
  std::printf("trained %s: vocabulary %zu (%zu merges) from %zu bytes in %zu file(s), %.2f s\n", out.c_str(),
              tok.vocab_size(), tok.num_merges(), bytes, inputs.size(), seconds_since(t0));
  return 0;
}

int tokenize_encode(const std::vector<std::string>& argv) {
  Args args(argv, {"tokenizer", "input", "out", "val-fraction", "shard-tokens", "threads"});
  const auto tok = data::Tokenizer::load(args.get("tokenizer"));
  data::EncodeOptions opt;
  opt.val_fraction = args.get_double("val-fraction", 0.0);
  const long long shard_tokens = args.get_int("shard-tokens", 100'000'000);
  MODA_CHECK(shard_tokens >= 1, "tokenize encode: --shard-tokens ", shard_tokens, " must be >= 1");
  opt.shard_tokens = size_t(shard_tokens);
  const long long threads = args.get_int("threads", 0);
  MODA_CHECK(threads >= 0, "tokenize encode: --threads ", threads, " must be >= 0");
  opt.threads = unsigned(threads);
  const auto stats = data::encode_corpus(tok, args.all("input"), args.get("out"), opt);
  std::printf(
      "encoded %llu bytes -> %llu train tokens (%zu shard(s)), %llu val tokens (%zu shard(s)), "
      "%.2f s, %.1f MB/s\n",
      (unsigned long long)stats.bytes, (unsigned long long)stats.train_tokens, stats.train_shards.size(),
      (unsigned long long)stats.val_tokens, stats.val_shards.size(), stats.seconds,
      stats.bytes / 1e6 / std::max(stats.seconds, 1e-9));
  return 0;
}

int tokenize_decode(const std::vector<std::string>& argv) {
  Args args(argv, {"tokenizer", "input"});
  const auto tok = data::Tokenizer::load(args.get("tokenizer"));
  for (const auto& path : args.all("input")) {
    data::ShardView shard(path);
    shard.validate(tok.vocab_size());
    std::vector<uint32_t> ids;
    for (size_t pos = 0; pos < shard.size();) {  // in blocks: shards can be large
      const size_t n = std::min<size_t>(1 << 20, shard.size() - pos);
      ids.resize(n);
      shard.read(pos, n, ids.data());
      const std::string text = tok.decode(ids);
      MODA_CHECK(std::fwrite(text.data(), 1, text.size(), stdout) == text.size(),
                 "tokenize decode: cannot write to stdout");
      pos += n;
    }
  }
  MODA_CHECK(std::fflush(stdout) == 0, "tokenize decode: cannot write to stdout");
  return 0;
}

}  // namespace

MODA_COMMAND("tokenize train", "train a byte-level BPE tokenizer: --input FILE... --vocab-size N --out tokenizer.json",
             tokenize_train);
MODA_COMMAND("tokenize encode", "text -> token shards: --tokenizer T --input FILE... --out PREFIX [--val-fraction F]",
             tokenize_encode);
MODA_COMMAND("tokenize decode", "print the text of shards: --tokenizer T --input SHARD...", tokenize_decode);

}  // namespace moda::app
