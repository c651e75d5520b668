#include "nn/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace moda::nn {

int64_t Generation::generated() const {
  int64_t n = 0;
  for (const auto& t : tokens) n += int64_t(t.size());
  return n;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void check_request(const LanguageModel& model, const std::vector<std::vector<int64_t>>& prompts,
                   const GenerateOptions& o) {
  MODA_CHECK(!prompts.empty(), "generate: no prompts");
  MODA_CHECK(o.max_new_tokens >= 1, "generate: max_new_tokens must be >= 1, got ", o.max_new_tokens);
  o.sampling.validate();
  const int64_t V = model.config().vocab_size;
  MODA_CHECK(o.end_token >= -1 && o.end_token < V, "generate: end token ", o.end_token, " outside the vocabulary of ",
             V);
  for (size_t b = 0; b < prompts.size(); ++b) {
    MODA_CHECK(!prompts[b].empty(), "generate: prompt ", b, " is empty (give at least one token)");
    for (int64_t id : prompts[b])
      MODA_CHECK(id >= 0 && id < V, "generate: prompt ", b, " holds id ", id, " outside the vocabulary of ", V);
  }
}

}  // namespace

Generation generate(const LanguageModel& model, const std::vector<std::vector<int64_t>>& prompts,
                    const GenerateOptions& o, const TokenCallback& on_token) {
  check_request(model, prompts, o);
  const int64_t B = int64_t(prompts.size());
  int64_t shortest = INT64_MAX, longest = 0;
  for (const auto& p : prompts)
    shortest = std::min(shortest, int64_t(p.size())), longest = std::max(longest, int64_t(p.size()));
  // The last token chosen is never run through the model: the longest row needs this many positions.
  const int64_t capacity = longest + o.max_new_tokens - 1;
  const int64_t max_len = model.config().max_seq_len;
  MODA_CHECK(max_len == 0 || capacity <= max_len, "generate: the longest prompt (", longest, " tokens) + ",
             o.max_new_tokens, " new tokens run ", capacity, " positions, over model.max_seq_len = ", max_len);

  Generation g;
  g.tokens.resize(size_t(B));
  g.ended.assign(size_t(B), false);
  DecodeCache cache = model.new_decode_cache(B, std::max<int64_t>(capacity, shortest));
  const DType id_type = DType::I64;

  auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> ids(size_t(B * shortest));
  for (int64_t b = 0; b < B; ++b) std::copy_n(prompts[b].begin(), shortest, ids.begin() + b * shortest);
  Tensor logits = model.decode(Tensor::from_ints(ids, {B, shortest}, id_type, model.device()), cache, true);

  std::vector<int64_t> next(prompts.size());
  const int64_t V = model.config().vocab_size;
  for (int64_t pos = shortest;; ++pos) {
    std::vector<float> host = logits.to(Device::cpu()).to_float_vector();  // [B, 1, V]; waits for the device
    if (pos == shortest) g.prefill_seconds = seconds_since(start), start = std::chrono::steady_clock::now();
    bool running = false;
    for (int64_t b = 0; b < B; ++b) {
      const auto& prompt = prompts[b];
      auto& out = g.tokens[b];
      if (pos < int64_t(prompt.size())) {  // still reading its prompt
        next[b] = prompt[pos];
      } else if (!g.ended[b] && int64_t(out.size()) < o.max_new_tokens) {
        const uint64_t draw = (uint64_t(b) << 32) | uint64_t(out.size());
        next[b] = sample_token({host.data() + b * V, size_t(V)}, o.sampling, draw);
        out.push_back(next[b]);
        if (on_token) on_token(size_t(b), next[b]);
        if (next[b] == o.end_token) g.ended[b] = true;
      } else {
        next[b] = 0;  // finished: a filler whose results are ignored
      }
      running = running || pos < int64_t(prompt.size()) || (!g.ended[b] && int64_t(out.size()) < o.max_new_tokens);
    }
    if (!running) break;
    logits = model.decode(Tensor::from_ints(next, {B, 1}, id_type, model.device()), cache, true);
    ++g.steps;
  }
  g.decode_seconds = seconds_since(start);
  return g;
}

}  // namespace moda::nn
