#include "data/bpe_train.h"

#include <algorithm>
#include <queue>
#include <tuple>

namespace moda::data {

namespace {

using PairKey = uint64_t;
PairKey key(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }
uint32_t left_of(PairKey k) { return static_cast<uint32_t>(k >> 32); }
uint32_t right_of(PairKey k) { return static_cast<uint32_t>(k); }

struct HeapEntry {
  uint64_t count;
  PairKey pair;
  bool operator<(const HeapEntry& o) const {  // max count first, then smallest pair
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

}  // namespace

BpeTrainResult train_bpe(const std::unordered_map<std::string, uint64_t>& word_counts, size_t max_tokens,
                         uint64_t min_frequency) {
  BpeTrainResult result;
  for (int b = 0; b < 256; ++b) result.tokens.emplace_back(1, static_cast<char>(b));
  std::unordered_map<std::string, uint32_t> token_ids;
  for (uint32_t b = 0; b < 256; ++b) token_ids[result.tokens[b]] = b;

  // Words in sorted order so that every index (and thus every tie) is reproducible.
  std::vector<std::pair<std::string, uint64_t>> sorted(word_counts.begin(), word_counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::vector<uint32_t>> words(sorted.size());
  std::vector<uint64_t> counts(sorted.size());
  for (size_t w = 0; w < sorted.size(); ++w) {
    counts[w] = sorted[w].second;
    for (char ch : sorted[w].first) words[w].push_back(static_cast<uint8_t>(ch));
  }
  sorted.clear();

  std::unordered_map<PairKey, uint64_t> pair_count;
  std::unordered_map<PairKey, std::vector<uint32_t>> where;  // words that (once) held the pair
  auto note = [&](PairKey p, uint32_t w) {
    auto& list = where[p];
    if (list.empty() || list.back() != w) list.push_back(w);
  };
  for (uint32_t w = 0; w < words.size(); ++w)
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      PairKey p = key(words[w][i], words[w][i + 1]);
      pair_count[p] += counts[w];
      note(p, w);
    }
  // Heap entries may be stale: a popped count that no longer matches is re-queued with the
  // current (never larger: existing pairs only lose occurrences) count.
  std::priority_queue<HeapEntry> heap;
  {
    std::vector<HeapEntry> init;
    init.reserve(pair_count.size());
    for (auto& [p, c] : pair_count) init.push_back({c, p});
    heap = std::priority_queue<HeapEntry>(std::less<HeapEntry>(), std::move(init));
  }

  std::vector<PairKey> new_pairs;
  while (result.tokens.size() < max_tokens && !heap.empty()) {
    HeapEntry top = heap.top();
    heap.pop();
    auto pc = pair_count.find(top.pair);
    const uint64_t current = pc == pair_count.end() ? 0 : pc->second;
    if (current != top.count) {
      if (current > 0) heap.push({current, top.pair});
      continue;
    }
    if (top.count < std::max<uint64_t>(min_frequency, 1)) break;

    const uint32_t a = left_of(top.pair), b = right_of(top.pair);
    std::string merged_bytes = result.tokens[a] + result.tokens[b];
    uint32_t merged;
    if (auto it = token_ids.find(merged_bytes); it != token_ids.end()) {
      merged = it->second;
    } else {
      merged = static_cast<uint32_t>(result.tokens.size());
      token_ids.emplace(merged_bytes, merged);
      result.tokens.push_back(std::move(merged_bytes));
    }
    result.merges.push_back({a, b, merged});

    // Rewrite every word holding (a, b): remove its old pair counts, merge left to right without
    // overlap, add the new pair counts back. Pairs that gain count are the ones with `merged`.
    std::vector<uint32_t> affected = std::move(where[top.pair]);
    where.erase(top.pair);
    new_pairs.clear();
    for (uint32_t w : affected) {
      auto& sy = words[w];
      bool present = false;
      for (size_t i = 0; i + 1 < sy.size(); ++i)
        if (sy[i] == a && sy[i + 1] == b) present = true;
      if (!present) continue;
      const uint64_t c = counts[w];
      for (size_t i = 0; i + 1 < sy.size(); ++i) pair_count[key(sy[i], sy[i + 1])] -= c;
      std::vector<uint32_t> next;
      next.reserve(sy.size());
      for (size_t i = 0; i < sy.size(); ++i) {
        if (i + 1 < sy.size() && sy[i] == a && sy[i + 1] == b) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(sy[i]);
        }
      }
      sy = std::move(next);
      for (size_t i = 0; i + 1 < sy.size(); ++i) {
        PairKey p = key(sy[i], sy[i + 1]);
        pair_count[p] += c;
        if (sy[i] == merged || sy[i + 1] == merged) {
          note(p, w);
          new_pairs.push_back(p);
        }
      }
    }
    pair_count.erase(top.pair);
    std::sort(new_pairs.begin(), new_pairs.end());
    new_pairs.erase(std::unique(new_pairs.begin(), new_pairs.end()), new_pairs.end());
    for (PairKey p : new_pairs)
      if (pair_count[p] > 0) heap.push({pair_count[p], p});
  }
  return result;
}

}  // namespace moda::data
