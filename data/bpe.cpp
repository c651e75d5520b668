#include "data/bpe.h"

#include <queue>

namespace moda::data {

BpeModel::BpeModel(const std::array<int64_t, 256>& byte_ids, const std::vector<BpeMerge>& merges,
                   std::optional<uint32_t> unk, bool fuse_unk)
    : byte_ids_(byte_ids), unk_(unk), fuse_unk_(fuse_unk) {
  merges_.reserve(merges.size() * 2);
  for (size_t r = 0; r < merges.size(); ++r)
    merges_[key(merges[r].left, merges[r].right)] = {static_cast<uint32_t>(r), merges[r].merged};
}

void BpeModel::encode_word(std::string_view word, std::vector<uint32_t>& out) const {
  struct Symbol {
    uint32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  bool last_unk = false;
  for (char ch : word) {
    int64_t id = byte_ids_[static_cast<uint8_t>(ch)];
    if (id < 0) {  // byte missing from the vocabulary: unk (fused if asked) or dropped, like HF
      if (!unk_) continue;
      if (fuse_unk_ && last_unk) continue;
      id = *unk_;
      last_unk = true;
    } else {
      last_unk = false;
    }
    const auto i = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<uint32_t>(id), i - 1, i + 1, true});
  }
  if (sym.empty()) return;
  sym.back().next = -1;
  if (sym.size() == 1) {
    out.push_back(sym[0].id);
    return;
  }

  struct Cand {
    uint32_t rank;
    int32_t pos;
    uint32_t merged;
    bool operator<(const Cand& o) const {  // min-heap on (rank, pos)
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Cand> heap;
  auto push_pair = [&](int32_t pos) {
    const int32_t nx = sym[pos].next;
    if (nx < 0) return;
    auto it = merges_.find(key(sym[pos].id, sym[nx].id));
    if (it != merges_.end()) heap.push({it->second.first, pos, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) push_pair(i);

  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Symbol& s = sym[c.pos];
    if (!s.alive || s.next < 0) continue;
    // Stale entry: the pair at pos changed since it was queued.
    auto it = merges_.find(key(s.id, sym[s.next].id));
    if (it == merges_.end() || it->second.second != c.merged) continue;
    Symbol& right = sym[s.next];
    s.id = c.merged;
    right.alive = false;
    s.next = right.next;
    if (right.next >= 0) sym[right.next].prev = c.pos;
    if (s.prev >= 0) push_pair(s.prev);
    push_pair(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace moda::data
