#include "data/corpus.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "data/io.h"
#include "data/shard.h"

namespace moda::data {

namespace {

// The first split point at or after `from` (or the end of the text).
size_t next_split(const Tokenizer& tok, std::string_view text, size_t from) {
  while (from < text.size() && !tok.is_split_point(text, from)) ++from;
  return std::min(from, text.size());
}

// One split's shard sequence: rolls over to a new shard every `shard_tokens` tokens; shards stay
// under temporary names until commit().
class SplitWriter {
 public:
  SplitWriter(std::string prefix, std::string split, int version, size_t shard_tokens)
      : prefix_(std::move(prefix)), split_(std::move(split)), version_(version), per_(shard_tokens) {}

  void append(std::span<const uint32_t> tokens) {
    while (!tokens.empty()) {
      if (!current_ || current_->size() == per_) {
        if (current_) current_->close(), done_.push_back(std::move(current_));
        current_ = std::make_unique<ShardWriter>(shard_name(prefix_, split_, done_.size()), version_);
      }
      size_t take = std::min(tokens.size(), per_ - current_->size());
      current_->append(tokens.first(take));
      tokens = tokens.subspan(take);
      total_ += take;
    }
  }

  std::vector<std::string> commit() {
    if (current_) current_->close(), done_.push_back(std::move(current_));
    std::vector<std::string> names;
    for (auto& w : done_) w->commit(), names.push_back(w->path());
    // Remove higher-numbered shards of an earlier run under the same prefix.
    for (size_t i = done_.size();; ++i) {
      std::string stale = shard_name(prefix_, split_, i);
      struct stat st {};
      if (::stat(stale.c_str(), &st) != 0) break;
      spdlog::info("removing {} (left from an earlier run with the same prefix)", stale);
      std::remove(stale.c_str());
    }
    return names;
  }
  uint64_t total() const { return total_; }

 private:
  std::string prefix_, split_;
  int version_;
  size_t per_;
  uint64_t total_ = 0;
  std::unique_ptr<ShardWriter> current_;
  std::vector<std::unique_ptr<ShardWriter>> done_;
};

}  // namespace

std::vector<uint32_t> encode_parallel(const Tokenizer& tok, std::string_view text, unsigned threads,
                                      size_t chunk_bytes) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::string_view> chunks;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = pos + chunk_bytes >= text.size() ? text.size() : next_split(tok, text, pos + chunk_bytes);
    chunks.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  if (chunks.size() <= 1 || threads == 1) return tok.encode(text);
  std::vector<std::vector<uint32_t>> parts(chunks.size());
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  auto worker = [&] {
    for (size_t i; (i = next++) < chunks.size();) {
      try {
        parts[i] = tok.encode(chunks[i]);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::min<size_t>(threads, chunks.size()); ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  size_t total = 0;
  for (auto& p : parts) total += p.size();
  std::vector<uint32_t> out;
  out.reserve(total);
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

EncodeStats encode_corpus(const Tokenizer& tok, const std::vector<std::string>& inputs, const std::string& prefix,
                          const EncodeOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  MODA_CHECK(!inputs.empty(), "tokenize encode: no input files");
  MODA_CHECK(opt.val_fraction >= 0.0 && opt.val_fraction < 1.0, "tokenize encode: --val-fraction ", opt.val_fraction,
             " is not in [0, 1)");
  MODA_CHECK(opt.shard_tokens >= 1 && opt.shard_tokens <= kMaxShardTokens, "tokenize encode: --shard-tokens ",
             opt.shard_tokens, " is not in [1, ", kMaxShardTokens, "]");
  MODA_CHECK(!prefix.empty(), "tokenize encode: empty --out prefix");
  const uint32_t eot = tok.eot_id();
  const unsigned threads = opt.threads ? opt.threads : std::max(1u, std::thread::hardware_concurrency());

  // Check every input before writing anything.
  for (const auto& path : inputs) {
    struct stat st {};
    MODA_CHECK(::stat(path.c_str(), &st) == 0, "tokenize encode: input file '", path, "': ", std::strerror(errno));
    MODA_CHECK(S_ISREG(st.st_mode), "tokenize encode: input '", path, "' is not a regular file");
    MODA_CHECK(st.st_size > 0, "tokenize encode: input file '", path, "' is empty");
  }

  const int version = shard_version_for_vocab(tok.vocab_size());
  SplitWriter train(prefix, "train", version, opt.shard_tokens);
  SplitWriter val(prefix, "val", version, opt.shard_tokens);
  EncodeStats stats;
  // Encodes a part in pieces of a few chunks per thread, so memory stays bounded for big files.
  auto write_part = [&](std::string_view part, SplitWriter& w) {
    if (part.empty()) return;
    w.append(std::span<const uint32_t>(&eot, 1));
    const size_t batch = opt.chunk_bytes * threads * 2;
    for (size_t pos = 0; pos < part.size();) {
      size_t end = pos + batch >= part.size() ? part.size() : next_split(tok, part, pos + batch);
      w.append(encode_parallel(tok, part.substr(pos, end - pos), threads, opt.chunk_bytes));
      pos = end;
    }
  };
  for (const auto& path : inputs) {
    MappedFile file(path, "input text");
    std::string_view text = file.view();
    MODA_CHECK(!text.empty(), "tokenize encode: input file '", path, "' is empty");
    size_t cut = text.size();
    if (opt.val_fraction > 0) {
      cut = static_cast<size_t>((1.0 - opt.val_fraction) * double(text.size()));
      size_t nl = text.find('\n', cut);
      if (nl != std::string_view::npos) {
        cut = nl + 1;
      } else {
        while (cut < text.size() && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) ++cut;
      }
    }
    const uint64_t before_train = train.total(), before_val = val.total();
    write_part(text.substr(0, cut), train);
    write_part(text.substr(cut), val);
    stats.bytes += text.size();
    spdlog::info("tokenize encode: {} ({} bytes): {} train + {} val tokens", path, text.size(),
                 train.total() - before_train, val.total() - before_val);
  }
  if (opt.val_fraction > 0 && val.total() == 0)
    spdlog::warn("tokenize encode: --val-fraction {} left no text for validation", opt.val_fraction);
  stats.train_tokens = train.total();
  stats.val_tokens = val.total();
  stats.train_shards = train.commit();
  stats.val_shards = val.commit();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace moda::data
