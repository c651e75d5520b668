#include "nn/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace moda::nn {

void SamplingOptions::validate() const {
  MODA_CHECK(std::isfinite(temperature) && temperature >= 0.0, "temperature: value ", temperature,
             " is invalid: must be >= 0 (0 = greedy)");
  MODA_CHECK(top_k >= 0, "top_k: value ", top_k, " is invalid: must be >= 0 (0 = no limit)");
  MODA_CHECK(top_p > 0.0 && top_p <= 1.0, "top_p: value ", top_p, " is invalid: must be in (0, 1]");
}

int64_t sample_token(std::span<const float> logits, const SamplingOptions& o, uint64_t draw) {
  MODA_CHECK(!logits.empty(), "sample_token: no logits");
  const int64_t V = int64_t(logits.size());
  if (o.greedy()) return int64_t(std::max_element(logits.begin(), logits.end()) - logits.begin());

  // Candidates ids[0, n): the whole vocabulary, or its top_k most likely (partially sorted, most
  // likely first; ties to the lower id).
  // Scratch reused across calls (one call per row per step): no allocation and page faults per row.
  thread_local std::vector<int64_t> ids;
  thread_local std::vector<double> p_of;  // by token id, for the candidates
  ids.resize(logits.size());
  p_of.resize(logits.size());
  std::iota(ids.begin(), ids.end(), int64_t(0));
  auto more_likely = [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  int64_t n = V;
  bool sorted = false;
  if (o.top_k > 0 && o.top_k < V) {
    n = o.top_k;
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), more_likely);
    sorted = true;
  }

  // Probabilities in double, relative to the largest logit (softmax of logits / temperature).
  double top = -INFINITY;
  for (int64_t i = 0; i < n; ++i) top = std::max(top, double(logits[ids[i]]));
  MODA_CHECK(std::isfinite(top), "sample_token: every logit is -inf or NaN");
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += (p_of[ids[i]] = std::exp((double(logits[ids[i]]) - top) / o.temperature));
  auto prob = [&](int64_t id) { return p_of[id]; };

  if (o.top_p < 1.0) {
    // The nucleus: the smallest most-likely-first prefix whose mass reaches top_p * total (>= 1
    // token). Only as much of the order as the nucleus needs is sorted: first the 1024 most
    // likely, 4x more while their mass falls short. A full sort of 50 k ids took ~4 ms a row,
    // 0.1 s a step at batch 32; a trained model's nucleus is mostly far smaller.
    const double target = o.top_p * total;
    double mass = 0.0;
    int64_t keep = 0;
    for (int64_t k = std::min<int64_t>(n, 1024);; k = std::min(n, 4 * k)) {
      if (!sorted) std::partial_sort(ids.begin() + keep, ids.begin() + k, ids.begin() + n, more_likely);
      while (keep < k && mass < target) mass += prob(ids[keep++]);
      if (mass >= target || k == n) break;
    }
    n = std::max<int64_t>(keep, 1);
    total = 0.0;
    for (int64_t i = 0; i < n; ++i) total += prob(ids[i]);
  }
  const double u = rng::uniform(o.seed, draw) * total;  // in (0, total]
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double p = prob(ids[i]);
    if ((acc += p) >= u && p > 0.0) return ids[i];
  }
  for (int64_t i = n - 1; i >= 0; --i)  // rounding left u above the last sum: the last possible token
    if (prob(ids[i]) > 0.0) return ids[i];
  return ids[0];
}

}  // namespace moda::nn
