#pragma once
// Token shards (read with pread, see data/shard.h) -> batches of input/target windows.
//
// TrainLoader (random windows, deterministic, resumable, disjoint per rank):
//   An epoch cuts every shard into non-overlapping windows of T+1 tokens (inputs = first T,
//   targets = last T), starting at an offset in [0, T) drawn per epoch from the seed, so
//   boundaries move between epochs; windows never cross shard boundaries, and the tail that
//   does not fill a window is skipped that epoch. The epoch's M windows are visited in a
//   pseudo-random order: a keyed Feistel permutation of [0, M) (no O(M) table), keyed by
//   (seed, epoch). Rank r of R takes permuted positions r, r+R, r+2R, ... so ranks never share
//   a window, and every rank gets floor(M / R) windows per epoch (the remainder is skipped).
//   A batch is the next B windows of the rank; batches run on into the next epoch.
//   The whole sampling state is (seed, epoch, cursor): state() / load_state() save and restore
//   it as JSON, and a restored loader yields exactly the batches the original would have.
//   The state is the same on every rank (all ranks advance in step), so rank 0's copy suffices;
//   a state saved at world size R loads at another world size R' from the same global position.
//
// EvalLoader (sequential, full coverage):
//   Each shard is cut into windows starting at 0, T, 2T, ...; window j predicts tokens
//   jT+1 .. jT+T of its shard, so every token except each shard's first is a target exactly
//   once. The last window of a shard is usually partial: its missing positions have input 0
//   and target kIgnoreIndex (-1, the cross-entropy kernels' ignore_index). Windows are dealt
//   round-robin to ranks; every rank sees the same number of batches (rows past the end are
//   all kIgnoreIndex), so collectives stay matched.
//
// With vocab_size > 0 every token read is checked (an id >= vocab_size throws moda::Error naming
// the shard, token index and byte offset).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/shard.h"

namespace moda::data {

constexpr int64_t kIgnoreIndex = -1;
// Limits on sizes that come from flags and configs, checked before anything is allocated:
// a window of 16M tokens is far past any model here, and 2^31 tokens per batch keeps the
// caller's B*T buffers and int32 indexing in range.
constexpr int64_t kMaxLoaderSeqLen = int64_t(1) << 24;
constexpr int64_t kMaxLoaderBatchTokens = int64_t(1) << 31;

struct LoaderOptions {
  std::vector<std::string> shards;  // shard paths (find_shards expands a glob)
  int64_t batch_size = 1;           // B: windows per batch on each rank
  int64_t seq_len = 0;              // T
  int rank = 0, world_size = 1;
  uint64_t seed = 0;      // TrainLoader only
  size_t vocab_size = 0;  // > 0: check token ids
};

// The opened shards shared by both loaders.
class ShardSet {
 public:
  explicit ShardSet(const std::vector<std::string>& paths);
  const std::vector<ShardView>& shards() const { return shards_; }
  uint64_t total_tokens() const { return total_; }

 private:
  std::vector<ShardView> shards_;
  uint64_t total_ = 0;
};

class TrainLoader {
 public:
  explicit TrainLoader(const LoaderOptions& options);

  // Fills inputs and targets, each [B, T] row-major.
  void next(int32_t* inputs, int32_t* targets);
  void next(int64_t* inputs, int64_t* targets);

  int64_t epoch() const { return epoch_; }
  int64_t windows_per_rank(int64_t epoch) const;  // windows each rank draws in that epoch
  uint64_t total_tokens() const { return set_.total_tokens(); }

  nlohmann::json state() const;
  // Throws if the state does not fit these shards/options. A state saved at another world size
  // continues from the same global position in the epoch's order (the windows all saved ranks
  // took together); returns how many windows were skipped to round that position up to a
  // multiple of this world size (0 when it already is one, always at an unchanged world size).
  uint64_t load_state(const nlohmann::json& state);

 private:
  struct Epoch {
    int64_t index = -1;
    uint64_t shift = 0, windows = 0;
    std::vector<uint64_t> cumulative;  // windows in shards [0, k]
  };
  const Epoch& epoch_layout(int64_t e) const;
  template <typename I>
  void next_impl(I* inputs, I* targets);

  LoaderOptions opt_;
  ShardSet set_;
  int64_t epoch_ = 0;
  uint64_t cursor_ = 0;  // windows this rank has taken in the current epoch
  mutable Epoch layout_;
  std::vector<int64_t> window_;
};

class EvalLoader {
 public:
  explicit EvalLoader(const LoaderOptions& options);

  // Fills the next batch ([B, T] each); returns false (writing nothing) when the rank is done.
  // `valid` (optional) receives the number of targets that are not kIgnoreIndex.
  bool next(int32_t* inputs, int32_t* targets, int64_t* valid = nullptr);
  bool next(int64_t* inputs, int64_t* targets, int64_t* valid = nullptr);
  void reset() { cursor_ = 0; }

  int64_t num_batches() const { return batches_; }   // per rank, equal on all ranks
  uint64_t num_targets() const { return targets_; }  // all ranks together

  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  template <typename I>
  bool next_impl(I* inputs, I* targets, int64_t* valid);

  LoaderOptions opt_;
  ShardSet set_;
  std::vector<uint64_t> cumulative_;  // windows in shards [0, k]
  uint64_t windows_ = 0, targets_ = 0;
  int64_t batches_ = 0, cursor_ = 0;
  std::vector<int64_t> window_;
};

}  // namespace moda::data
