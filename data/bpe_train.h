#pragma once
// Byte-level BPE training over counted words (the pre-tokenized pieces of the corpus).
//
// Tokens 0..255 are the single bytes (id = byte value). Each step merges the adjacent pair with
// the highest total count over all words; ties go to the smaller (left id, right id), so the
// result depends only on the word counts, never on hash-map order. Pair counts are kept
// incrementally (a heap with lazy updates plus, per pair, the words that contain it), so a step
// touches only the words that hold the merged pair. As in Hugging Face's trainer, a merge whose
// byte string already is a token reuses that token's id.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/bpe.h"

namespace moda::data {

struct BpeTrainResult {
  std::vector<std::string> tokens;  // id -> raw bytes; ids 0..255 are the bytes
  std::vector<BpeMerge> merges;     // in rank order
};

// Stops when `max_tokens` tokens exist or the best pair occurs fewer than `min_frequency` times.
BpeTrainResult train_bpe(const std::unordered_map<std::string, uint64_t>& word_counts, size_t max_tokens,
                         uint64_t min_frequency);

}  // namespace moda::data
