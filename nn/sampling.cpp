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

  // Candidates, most likely first where a limit needs the order: a partial sort for top_k, a full
  // one only for top_p alone; without limits the vocabulary order is kept (no sort at all).
  std::vector<int64_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), int64_t(0));
  auto more_likely = [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  int64_t n = V;
  if (o.top_k > 0 && o.top_k < V) {
    n = o.top_k;
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), more_likely);
  } else if (o.top_p < 1.0) {
    std::sort(ids.begin(), ids.end(), more_likely);
  }

  // Probabilities in double, relative to the largest logit (softmax of logits / temperature).
  double top = -INFINITY;
  for (int64_t i = 0; i < n; ++i) top = std::max(top, double(logits[ids[i]]));
  MODA_CHECK(std::isfinite(top), "sample_token: every logit is -inf or NaN");
  std::vector<double> p(static_cast<size_t>(n));
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += (p[i] = std::exp((double(logits[ids[i]]) - top) / o.temperature));

  if (o.top_p < 1.0) {  // ids[0, n) are sorted: the smallest prefix whose probability reaches top_p (>= 1 token)
    double mass = 0.0;
    int64_t keep = 0;
    while (keep < n && mass < o.top_p * total) mass += p[keep++];
    n = std::max<int64_t>(keep, 1);
    total = 0.0;
    for (int64_t i = 0; i < n; ++i) total += p[i];
  }
  const double u = rng::uniform(o.seed, draw) * total;  // in (0, total]
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if ((acc += p[i]) >= u && p[i] > 0.0) return ids[i];
  for (int64_t i = n - 1; i >= 0; --i)  // rounding left u above the last sum: the last possible token
    if (p[i] > 0.0) return ids[i];
  return ids[0];
}

}  // namespace moda::nn
