// Incremental decoding through the KV + depth cache (LanguageModel::decode) against the full
// forward pass, for every variant and norm placement; generation (nn/generate.h): greedy and
// sampled tokens equal those chosen from full forward passes, batching and seeds.
#include <algorithm>
#include <catch2/catch.hpp>
#include <vector>

#include "nn/generate.h"
#include "nn/language_model.h"
#include "tests/compare.h"
#include "tests/test_models.h"
#include "tests/test_support.h"

using namespace moda;
using namespace moda::nn;
using moda::test::rel_l2;
using moda::testing::error_of;
using moda::testing::random_ids;

namespace {

const Variant kVariants[] = {Variant::Sequence, Variant::DepthKV, Variant::DepthKVFFN, Variant::DepthKVFFNAttn};
const NormPlacement kNorms[] = {NormPlacement::Pre, NormPlacement::Post, NormPlacement::Reordered};

// 3 layers (so the last layer reads depth entries of two earlier ones), GQA 4/2, d 4.
ModelConfig small(Variant v, NormPlacement n) {
  ModelConfig c;
  c.vocab_size = 23;
  c.d_model = 16;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.ffn_hidden = 24;
  c.variant = v;
  c.norm = n;
  c.qk_norm = true;
  c.bias = true;
  c.max_seq_len = 16;
  c.init_std = 0.3;  // peaked enough that attention weights differ visibly between positions
  c.validate();
  return c;
}

// Logits of ids [B, T] run as a prefill of `chunks[0]` tokens, then blocks of chunks[1], ...
// (the rest one token at a time), concatenated along T: [B, T, V].
Tensor decoded_logits(const LanguageModel& m, const Tensor& ids, std::vector<int64_t> chunks, int64_t capacity) {
  const int64_t T = ids.size(1);
  DecodeCache cache = m.new_decode_cache(ids.size(0), capacity);
  Tensor out = Tensor::empty({ids.size(0), T, m.config().vocab_size}, m.dtype());
  for (size_t i = 0; cache.length() < T; ++i) {
    const int64_t n = i < chunks.size() ? chunks[i] : 1, t0 = cache.length();
    out.narrow(1, t0, n).copy_(m.decode(ids.narrow(1, t0, n), cache));
    CHECK(cache.length() == t0 + n);
  }
  return out;
}

}  // namespace

TEST_CASE("decode: prefill + incremental steps give the full forward's logits, every variant and norm", "[cpu][nn]") {
  const int64_t B = 2, T = 9;
  for (DType dt : {DType::F64, DType::F32})
    for (Variant v : kVariants)
      for (NormPlacement n : kNorms) {
        ModelConfig c = small(v, n);
        LanguageModel m(c, {5, Device::cpu(), dt});
        Tensor ids = Tensor::from_ints(random_ids(B * T, c.vocab_size, 9), {B, T});
        Tensor full = m.logits(ids);
        const double tol = dt == DType::F64 ? 1e-12 : 2e-6;
        // (prefill, then blocks), capacity: single steps after 1 and 4 tokens, a block of 3 at an
        // offset, the whole sequence at once, and a cache larger than the sequence.
        const std::vector<std::pair<std::vector<int64_t>, int64_t>> plans = {{{1}, T}, {{4}, T},  {{3, 3}, T},
                                                                             {{T}, T}, {{2}, 16}, {{T}, 12}};
        for (const auto& [chunks, cap] : plans) {
          INFO(dtype_name(dt) << " " << variant_name(v) << " " << norm_name(n) << " prefill " << chunks[0]
                              << " capacity " << cap);
          Tensor dec = decoded_logits(m, ids, chunks, cap);
          for (int64_t t = 0; t < T; ++t) {
            INFO("position " << t);
            CHECK(rel_l2(dec.narrow(1, t, 1), full.narrow(1, t, 1)) < tol);
          }
        }
      }
}

TEST_CASE("decode: last_only, cache bounds and bad inputs", "[cpu][nn]") {
  ModelConfig c = small(Variant::DepthKVFFN, NormPlacement::Pre);
  LanguageModel m(c, {5});
  Tensor ids = Tensor::from_ints(random_ids(2 * 6, c.vocab_size, 3), {2, 6});
  DecodeCache cache = m.new_decode_cache(2, 7);
  Tensor last = m.decode(ids, cache, /*last_only=*/true);
  CHECK(last.shape() == Shape{2, 1, c.vocab_size});
  CHECK(rel_l2(last, m.logits(ids).narrow(1, 5, 1)) < 2e-6);
  CHECK_THAT(error_of([&] { m.decode(ids.narrow(1, 0, 2), cache); }), Catch::Contains("do not fit the cache's 7"));
  CHECK_THAT(error_of([&] { m.decode(ids.narrow(0, 0, 1).narrow(1, 0, 1), cache); }),
             Catch::Contains("for a cache of batch 2"));
  CHECK_THAT(error_of([&] { m.new_decode_cache(1, 17); }), Catch::Contains("model.max_seq_len = 16"));
  cache.clear();  // the same buffers serve a new generation
  CHECK(rel_l2(m.decode(ids.narrow(1, 0, 1), cache), m.logits(ids.narrow(1, 0, 1))) < 2e-6);
}

// Greedy generation is argmax over full forward passes of the growing sequence; sampling draws
// sample_token(full logits, row << 32 | i). Run the full passes by hand and compare.
TEST_CASE("generate: tokens equal those chosen from full forward passes (greedy and sampled)", "[cpu][nn]") {
  for (Variant v : kVariants) {
    ModelConfig c = small(v, NormPlacement::Reordered);
    LanguageModel m(c, {11});
    const std::vector<std::vector<int64_t>> prompts = {random_ids(3, c.vocab_size, 1), random_ids(5, c.vocab_size, 2),
                                                       random_ids(1, c.vocab_size, 3)};
    for (double temperature : {0.0, 0.8}) {
      GenerateOptions o;
      o.max_new_tokens = 6;
      o.sampling.temperature = temperature;
      o.sampling.top_k = temperature > 0 ? 10 : 0;
      o.sampling.top_p = temperature > 0 ? 0.9 : 1.0;
      o.sampling.seed = 42;
      INFO(variant_name(v) << " temperature " << temperature);
      Generation g = generate(m, prompts, o);
      REQUIRE(g.tokens.size() == prompts.size());
      for (size_t b = 0; b < prompts.size(); ++b) {
        std::vector<int64_t> seq = prompts[b], expect;
        for (int64_t i = 0; i < o.max_new_tokens; ++i) {
          Tensor logits = m.logits(Tensor::from_ints(seq, {1, int64_t(seq.size())}));
          std::vector<float> last = logits.narrow(1, int64_t(seq.size()) - 1, 1).to_float_vector();
          expect.push_back(sample_token(last, o.sampling, (uint64_t(b) << 32) | uint64_t(i)));
          seq.push_back(expect.back());
        }
        INFO("prompt " << b);
        CHECK(g.tokens[b] == expect);
        CHECK(!g.ended[b]);
      }
      CHECK(g.generated() == 3 * o.max_new_tokens);
      CHECK(g.steps == 5 + o.max_new_tokens - 1 - 1);  // positions 1 .. longest + new - 2
    }
  }
}

TEST_CASE("generate: greedy is deterministic, a seed reproduces a sample, the end token stops a row", "[cpu][nn]") {
  ModelConfig c = small(Variant::DepthKVFFNAttn, NormPlacement::Post);
  LanguageModel m(c, {4});
  const std::vector<std::vector<int64_t>> prompts = {random_ids(4, c.vocab_size, 7), random_ids(2, c.vocab_size, 8)};
  GenerateOptions greedy;
  greedy.max_new_tokens = 8;
  greedy.sampling.temperature = 0;
  CHECK(generate(m, prompts, greedy).tokens == generate(m, prompts, greedy).tokens);

  GenerateOptions sample;
  sample.max_new_tokens = 8;
  sample.sampling.temperature = 1.5;  // flat: different seeds surely give different samples
  sample.sampling.seed = 1;
  const auto a = generate(m, prompts, sample).tokens;
  CHECK(generate(m, prompts, sample).tokens == a);
  sample.sampling.seed = 2;
  CHECK(generate(m, prompts, sample).tokens != a);

  // The end token: each row stops right after producing it (the draws are those of the run
  // without it, which depend on the row's own tokens only); the streamed tokens are the result.
  sample.sampling.seed = 1;
  sample.end_token = a[0][2];
  std::vector<std::vector<int64_t>> streamed(prompts.size());
  Generation g = generate(m, prompts, sample, [&](size_t row, int64_t id) { streamed[row].push_back(id); });
  CHECK(g.tokens == streamed);
  CHECK(g.ended[0]);
  for (size_t b = 0; b < prompts.size(); ++b) {
    auto stop = std::find(a[b].begin(), a[b].end(), sample.end_token);
    const bool ends = stop != a[b].end();
    INFO("prompt " << b);
    CHECK(g.tokens[b] == std::vector<int64_t>(a[b].begin(), ends ? stop + 1 : a[b].end()));
    CHECK(g.ended[b] == ends);
  }
}

TEST_CASE("generate: errors name the problem", "[cpu][nn]") {
  ModelConfig c = small(Variant::DepthKV, NormPlacement::Pre);
  LanguageModel m(c, {4});
  GenerateOptions o;
  CHECK_THAT(error_of([&] { generate(m, {}, o); }), Catch::Contains("no prompts"));
  CHECK_THAT(error_of([&] { generate(m, {{1}, {}}, o); }), Catch::Contains("prompt 1 is empty"));
  CHECK_THAT(error_of([&] { generate(m, {{1, 23}}, o); }), Catch::Contains("id 23 outside the vocabulary of 23"));
  o.max_new_tokens = 10;
  CHECK_THAT(error_of([&] { generate(m, {std::vector<int64_t>(8, 1)}, o); }),
             Catch::Contains("over model.max_seq_len = 16"));
  o.max_new_tokens = 9;  // 8 + 9 - 1 = 16 positions run: fits exactly
  CHECK(generate(m, {std::vector<int64_t>(8, 1)}, o).tokens[0].size() == 9);
  o.sampling.top_p = 0;
  CHECK_THAT(error_of([&] { generate(m, {{1}}, o); }), Catch::Contains("top_p: value 0 is invalid"));
}
