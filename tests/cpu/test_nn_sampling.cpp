// nn::sample_token: greedy, the top-k and top-p limits, seeds, and the sampled distribution.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/rng.h"
#include "nn/sampling.h"
#include "tests/test_support.h"

using namespace moda;
using namespace moda::nn;
using moda::testing::error_of;

TEST_CASE("sampling: greedy is the argmax, top_k 1 and a tiny top_p are too", "[cpu][nn]") {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  SamplingOptions o;
  o.temperature = 0;
  CHECK(sample_token(logits, o, 0) == 1);  // ties go to the lowest id
  o.temperature = 5.0;
  o.top_k = 1;
  for (uint64_t draw = 0; draw < 50; ++draw) CHECK(sample_token(logits, o, draw) == 1);
  o.top_k = 0;
  o.top_p = 1e-6;
  for (uint64_t draw = 0; draw < 50; ++draw) CHECK(sample_token(logits, o, draw) == 1);
}

TEST_CASE("sampling: frequencies follow the limited softmax and seeds reproduce draws", "[cpu][nn]") {
  const std::vector<float> logits = {1.0f, 0.0f, 2.0f, -0.5f, -INFINITY};
  const int n = 40000;
  auto frequencies = [&](const SamplingOptions& o) {
    std::vector<double> f(logits.size(), 0.0);
    for (int i = 0; i < n; ++i) f[size_t(sample_token(logits, o, uint64_t(i)))] += 1.0 / n;
    return f;
  };
  auto softmax = [&](std::vector<int> keep, double temperature) {
    std::vector<double> p(logits.size(), 0.0);
    double total = 0;
    for (int i : keep) total += (p[size_t(i)] = std::exp(logits[size_t(i)] / temperature));
    for (double& x : p) x /= total;
    return p;
  };
  SamplingOptions o;
  o.temperature = 0.7;
  std::vector<double> want = softmax({0, 1, 2, 3}, 0.7), got = frequencies(o);
  for (size_t i = 0; i < want.size(); ++i) CHECK(std::abs(got[i] - want[i]) < 0.01);
  o.top_k = 2;  // tokens 2 and 0
  want = softmax({2, 0}, 0.7), got = frequencies(o);
  for (size_t i = 0; i < want.size(); ++i) CHECK(std::abs(got[i] - want[i]) < 0.01);
  // top_p 0.8 at temperature 1: p = 0.61, 0.22, 0.08, 0.05 in order 2, 0, 1, 3; 0.61 + 0.22 >= 0.8.
  o.top_k = 0, o.temperature = 1.0, o.top_p = 0.8;
  want = softmax({2, 0}, 1.0), got = frequencies(o);
  for (size_t i = 0; i < want.size(); ++i) CHECK(std::abs(got[i] - want[i]) < 0.01);

  o.top_p = 1.0;
  o.seed = 3;
  std::vector<int64_t> a, b, c;
  for (uint64_t d = 0; d < 64; ++d) a.push_back(sample_token(logits, o, d)), b.push_back(sample_token(logits, o, d));
  o.seed = 4;
  for (uint64_t d = 0; d < 64; ++d) c.push_back(sample_token(logits, o, d));
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("sampling: invalid options are named", "[cpu][nn]") {
  SamplingOptions o;
  o.temperature = -1;
  CHECK_THAT(error_of([&] { o.validate(); }), Catch::Contains("temperature: value -1 is invalid"));
  o = {};
  o.top_k = -2;
  CHECK_THAT(error_of([&] { o.validate(); }), Catch::Contains("top_k: value -2 is invalid"));
  o = {};
  o.top_p = 1.5;
  CHECK_THAT(error_of([&] { o.validate(); }), Catch::Contains("top_p: value 1.5 is invalid"));
}

// The definition, written plainly: every candidate sorted most likely first (ties to the lower
// id), probabilities exp((logit - max) / T) in double, the total in candidate order (vocabulary
// order without top_k), the nucleus the shortest sorted prefix whose mass reaches top_p * total.
static int64_t reference_sample(const std::vector<float>& logits, const SamplingOptions& o, uint64_t draw) {
  const int64_t V = int64_t(logits.size());
  std::vector<int64_t> sorted(logits.size());
  std::iota(sorted.begin(), sorted.end(), int64_t(0));
  std::stable_sort(sorted.begin(), sorted.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  std::vector<int64_t> candidates(logits.size());
  std::iota(candidates.begin(), candidates.end(), int64_t(0));
  int64_t n = V;
  if (o.top_k > 0 && o.top_k < V) n = o.top_k, candidates = sorted;
  const double top = logits[sorted[0]];
  auto prob = [&](int64_t id) { return std::exp((double(logits[id]) - top) / o.temperature); };
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += prob(candidates[i]);
  if (o.top_p < 1.0) {
    double mass = 0.0;
    int64_t keep = 0;
    while (keep < n && mass < o.top_p * total) mass += prob(sorted[keep++]);
    n = std::max<int64_t>(keep, 1), candidates = sorted, total = 0.0;
    for (int64_t i = 0; i < n; ++i) total += prob(candidates[i]);
  }
  const double u = rng::uniform(o.seed, draw) * total;
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if ((acc += prob(candidates[i])) >= u) return candidates[i];
  return candidates[n - 1];
}

TEST_CASE("sampling: a 50304-token vocabulary draws what the plain definition draws", "[cpu][nn]") {
  // Flat logits put tens of thousands of tokens in a 0.9 nucleus, so the partial sort must grow
  // past its first blocks; Zipf-like logits (a trained model's shape) need fewer.
  std::vector<float> flat(50304), zipf(50304);
  for (size_t i = 0; i < flat.size(); ++i) {
    flat[i] = float(3.0 * rng::normal(7, i));
    zipf[i] = -1.2f * std::log(float(1 + (i * 7919) % zipf.size()));
  }
  struct Limits {
    double temperature, top_p;
    int64_t top_k;
  };
  for (const auto* logits : {&flat, &zipf})
    for (Limits l : {Limits{1.0, 0.9, 0}, Limits{0.8, 0.99, 0}, Limits{1.0, 0.5, 3000}, Limits{1.3, 1.0, 0},
                     Limits{1.0, 1.0, 40}}) {
      SamplingOptions o;
      o.temperature = l.temperature, o.top_p = l.top_p, o.top_k = l.top_k, o.seed = 11;
      INFO("temperature " << l.temperature << " top_p " << l.top_p << " top_k " << l.top_k << " logits "
                          << (logits == &flat ? "flat" : "zipf"));
      for (uint64_t draw = 0; draw < 40; ++draw)
        CHECK(sample_token(*logits, o, draw) == reference_sample(*logits, o, draw));
    }
}
