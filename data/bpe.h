#pragma once
// The BPE merge step for one pre-tokenized word, with Hugging Face's exact semantics: start from
// one symbol per byte, then repeatedly apply the merge of lowest rank present anywhere in the word
// (leftmost first among equal ranks), until no adjacent pair has a merge. A heap over the
// candidate pairs and a linked list of symbols make it O(n log n) in the word length.
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moda::data {

struct BpeMerge {
  uint32_t left, right, merged;  // token ids; merged = vocab[left's spelling + right's spelling]
};

class BpeModel {
 public:
  BpeModel() = default;
  // byte_ids[b]: id of the single-byte token for byte b, or -1 when the vocabulary lacks it.
  // merges in rank order (rank = index). A later duplicate of a pair replaces the earlier rank,
  // as in Hugging Face's loader. unk: id emitted for a byte without a token (none: dropped).
  BpeModel(const std::array<int64_t, 256>& byte_ids, const std::vector<BpeMerge>& merges, std::optional<uint32_t> unk,
           bool fuse_unk);

  // Appends the ids of `word` (raw bytes) to `out`.
  void encode_word(std::string_view word, std::vector<uint32_t>& out) const;

 private:
  static uint64_t key(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }
  std::array<int64_t, 256> byte_ids_{};
  std::unordered_map<uint64_t, std::pair<uint32_t, uint32_t>> merges_;  // (a,b) -> (rank, merged)
  std::optional<uint32_t> unk_;
  bool fuse_unk_ = false;
};

}  // namespace moda::data
