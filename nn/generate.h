#pragma once
// Text generation over token ids (docs/generate.md): prefill, then one token per step through the
// decode cache (nn/decode_cache.h), for a batch of prompts of different lengths.
//
// Batched prompts run in lockstep at shared positions, so one cache and one query offset serve
// all rows: the prefill covers the shortest prompt's length m; at each later position a row
// still inside its prompt is fed its next prompt token (its logits are not used), a generating
// row the token sampled from its last logits, and a finished row a filler token (ignored). No
// padding is ever attended to. Row b's new tokens are positions [len_b, len_b + max_new_tokens).
#include <cstdint>
#include <functional>
#include <vector>

#include "nn/language_model.h"
#include "nn/sampling.h"

namespace moda::nn {

struct GenerateOptions {
  int64_t max_new_tokens = 64;  // per prompt, >= 1
  SamplingOptions sampling;
  int64_t end_token = -1;  // a row stops after producing this id (-1: only at max_new_tokens)
};

struct Generation {
  std::vector<std::vector<int64_t>> tokens;  // new tokens per prompt (the end token included)
  std::vector<bool> ended;                   // the row stopped at end_token
  double prefill_seconds = 0;                // the first forward pass (over the shortest prompt)
  double decode_seconds = 0;                 // every later step
  int64_t steps = 0;                         // forward passes after the prefill
  int64_t generated() const;                 // new tokens over all rows
};

// Called as soon as a token is chosen (streaming); rows in batch order within a step.
using TokenCallback = std::function<void(size_t row, int64_t token)>;

// The random draw of row b's i-th new token is Philox(seed, b << 32 | i): a fixed seed reproduces
// every sample. Errors: empty prompt list or prompt, ids outside the vocabulary, options invalid,
// longest prompt + max_new_tokens - 1 over model.max_seq_len.
Generation generate(const LanguageModel& model, const std::vector<std::vector<int64_t>>& prompts,
                    const GenerateOptions& options, const TokenCallback& on_token = {});

}  // namespace moda::nn
