#pragma once
// Choosing the next token from one row of logits (docs/generate.md): greedy at temperature 0,
// otherwise a draw from softmax(logits / temperature) restricted to the top_k most likely tokens
// and then to the smallest most-likely set whose probability reaches top_p (nucleus sampling).
// The random number is Philox(seed, draw) (core/rng.h): the same seed, draw index and logits give
// the same token on every machine and device.
#include <cstdint>
#include <span>

namespace moda::nn {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (argmax; ties go to the lowest id)
  int64_t top_k = 0;         // 0: no limit
  double top_p = 1.0;        // in (0, 1]; 1: no limit
  uint64_t seed = 0;

  bool greedy() const { return temperature == 0.0; }
  // Throws moda::Error naming the field: temperature >= 0, top_k >= 0, top_p in (0, 1].
  void validate() const;
};

// The chosen token id of `logits` (one row, vocab_size entries, finite or -inf).
int64_t sample_token(std::span<const float> logits, const SamplingOptions& options, uint64_t draw);

}  // namespace moda::nn
