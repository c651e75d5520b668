#pragma once
// Text files -> token shards (what `moda tokenize encode` does).
//
// Every input file is one document. Each document is split by bytes into a train part and a val
// part: the val part is the last `val_fraction` of the file, starting at the first line start at
// or after byte floor((1 - val_fraction) * size) (or at that byte's character, for text with no
// later newline). Each non-empty part is written as <|endoftext|> followed by its tokens, so the
// end-of-text token separates (begins) every document, as in llm.c's shards. Parts go to
// PREFIX_train_NNNNNN.bin / PREFIX_val_NNNNNN.bin, `shard_tokens` tokens per shard.
//
// Nothing appears under a final name until every input is encoded: shards are written to
// temporary names and renamed at the end (on error the temporaries are removed). Shards of the
// same prefix left by an earlier, longer run (higher numbers) are removed so that a glob over
// the prefix sees exactly this run's data.
#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace moda::data {

struct EncodeOptions {
  double val_fraction = 0.0;          // in [0, 1)
  size_t shard_tokens = 100'000'000;  // tokens per shard file (llm.c's default)
  unsigned threads = 0;               // 0: std::thread::hardware_concurrency()
  size_t chunk_bytes = 4 << 20;       // text per parallel encoding task
};

struct EncodeStats {
  uint64_t bytes = 0, train_tokens = 0, val_tokens = 0;
  std::vector<std::string> train_shards, val_shards;
  double seconds = 0;
};

EncodeStats encode_corpus(const Tokenizer& tokenizer, const std::vector<std::string>& inputs, const std::string& prefix,
                          const EncodeOptions& options);

// Encodes text with `threads` workers, cutting it only at Tokenizer::is_split_point, so the ids
// equal tokenizer.encode(text) for any thread count and chunk size.
std::vector<uint32_t> encode_parallel(const Tokenizer& tokenizer, std::string_view text, unsigned threads,
                                      size_t chunk_bytes = 4 << 20);

}  // namespace moda::data
