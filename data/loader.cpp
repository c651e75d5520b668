#include "data/loader.h"

#include <algorithm>

#include "core/error.h"

namespace moda::data {

namespace {

uint64_t mix(uint64_t x) {  // splitmix64's finaliser: a cheap, well-spread 64-bit hash
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
uint64_t hash3(uint64_t a, uint64_t b, uint64_t c) { return mix(mix(mix(a) ^ b) ^ c); }

// A keyed pseudo-random permutation of [0, n): a balanced Feistel network on the smallest
// even number of bits covering n, with cycle walking (re-encrypt until the value is < n; at most
// 4x the domain, so ~4 steps worst case on average). O(1) memory for any n.
class FeistelPermutation {
 public:
  FeistelPermutation(uint64_t n, uint64_t key) : n_(n) {
    int bits = 2;
    while (bits < 62 && (uint64_t(1) << bits) < n) ++bits;
    bits += bits & 1;
    half_ = bits / 2;
    mask_ = (uint64_t(1) << half_) - 1;
    for (int r = 0; r < kRounds; ++r) keys_[r] = mix(key + uint64_t(r) * 0x632BE59BD9B4E019ull);
  }
  uint64_t operator()(uint64_t i) const {
    uint64_t x = i;
    do x = encrypt(x);
    while (x >= n_);
    return x;
  }

 private:
  static constexpr int kRounds = 6;
  uint64_t encrypt(uint64_t x) const {
    uint64_t l = x >> half_, r = x & mask_;
    for (int k = 0; k < kRounds; ++k) {
      uint64_t t = l ^ (mix(r ^ keys_[k]) & mask_);
      l = r;
      r = t;
    }
    return (l << half_) | r;
  }
  uint64_t n_, mask_ = 0;
  int half_ = 1;
  uint64_t keys_[kRounds] = {};
};

void check_options(const LoaderOptions& o, const char* who) {
  MODA_CHECK(!o.shards.empty(), who, ": no shards given");
  MODA_CHECK(o.seq_len >= 1, who, ": seq_len ", o.seq_len, " must be >= 1");
  MODA_CHECK(o.batch_size >= 1, who, ": batch_size ", o.batch_size, " must be >= 1");
  // Sizes come from flags and configs: bound them before the caller (or this loader) allocates.
  MODA_CHECK(o.seq_len <= kMaxLoaderSeqLen, who, ": seq_len ", o.seq_len, " is over the limit of ", kMaxLoaderSeqLen);
  MODA_CHECK(o.batch_size <= kMaxLoaderBatchTokens / o.seq_len, who, ": batch_size ", o.batch_size, " x seq_len ",
             o.seq_len, " is over the limit of ", kMaxLoaderBatchTokens, " tokens per batch");
  MODA_CHECK(o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size, who, ": rank ", o.rank,
             " is not in [0, world_size ", o.world_size, ")");
}

template <typename T>
T state_field(const nlohmann::json& s, const char* who, const char* key) {
  MODA_CHECK(s.is_object() && s.contains(key), who, " state: missing field '", key, "'");
  try {
    return s.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    MODA_FAIL(who, " state: field '", key, "' has the wrong type: ", s.at(key).dump());
  }
}

template <typename T>
void expect_same(const nlohmann::json& s, const char* who, const char* key, T now) {
  T saved = state_field<T>(s, who, key);
  MODA_CHECK(saved == now, who, " state: ", key, " is ", saved, " in the saved state but ", now,
             " now; the batches would not continue the saved run");
}

}  // namespace

ShardSet::ShardSet(const std::vector<std::string>& paths) {
  shards_.reserve(paths.size());
  for (const auto& p : paths) {
    shards_.emplace_back(p);
    total_ += shards_.back().size();
  }
}

// ---------------------------------------------------------------------------------------------
// TrainLoader

TrainLoader::TrainLoader(const LoaderOptions& o) : opt_(o), set_((check_options(o, "train loader"), o.shards)) {
  // Shift 0 gives the most windows; epochs whose shift leaves fewer than world_size windows
  // fall back to it (epoch_layout), so this is the one condition to check.
  uint64_t windows = 0;
  for (const auto& s : set_.shards()) windows += s.size() > 0 ? (s.size() - 1) / opt_.seq_len : 0;
  MODA_CHECK(windows >= uint64_t(opt_.world_size), "train loader: the ", set_.shards().size(), " shard(s) (",
             set_.total_tokens(), " tokens, first ", set_.shards()[0].path(), ") hold ", windows, " windows of ",
             opt_.seq_len + 1, " tokens; need at least one per rank (", opt_.world_size, ")");
  window_.resize(opt_.seq_len + 1);  // after the check: a window fits in a shard, so in memory
}

const TrainLoader::Epoch& TrainLoader::epoch_layout(int64_t e) const {
  if (layout_.index == e) return layout_;
  const uint64_t T = opt_.seq_len;
  auto build = [&](uint64_t shift) {
    layout_.shift = shift;
    layout_.cumulative.clear();
    uint64_t total = 0;
    for (const auto& s : set_.shards()) {
      total += s.size() >= shift + T + 1 ? (s.size() - shift - 1) / T : 0;
      layout_.cumulative.push_back(total);
    }
    layout_.windows = total;
  };
  build(hash3(opt_.seed, uint64_t(e), 0x5348494654ull) % T);
  if (layout_.windows < uint64_t(opt_.world_size)) build(0);
  layout_.index = e;
  return layout_;
}

int64_t TrainLoader::windows_per_rank(int64_t e) const {
  return int64_t(epoch_layout(e).windows / uint64_t(opt_.world_size));
}

template <typename I>
void TrainLoader::next_impl(I* inputs, I* targets) {
  const int64_t T = opt_.seq_len;
  for (int64_t b = 0; b < opt_.batch_size; ++b) {
    if (int64_t(cursor_) >= windows_per_rank(epoch_)) ++epoch_, cursor_ = 0;
    const Epoch& ep = epoch_layout(epoch_);
    const FeistelPermutation perm(ep.windows, hash3(opt_.seed, uint64_t(epoch_), 0x5045524Dull));
    const uint64_t g = perm(cursor_ * uint64_t(opt_.world_size) + uint64_t(opt_.rank));
    const size_t k = std::upper_bound(ep.cumulative.begin(), ep.cumulative.end(), g) - ep.cumulative.begin();
    const uint64_t local = g - (k ? ep.cumulative[k - 1] : 0);
    set_.shards()[k].read(ep.shift + local * T, T + 1, window_.data(), opt_.vocab_size);
    std::copy(window_.begin(), window_.end() - 1, inputs + b * T);
    std::copy(window_.begin() + 1, window_.end(), targets + b * T);
    ++cursor_;
  }
}

void TrainLoader::next(int32_t* inputs, int32_t* targets) { next_impl(inputs, targets); }
void TrainLoader::next(int64_t* inputs, int64_t* targets) { next_impl(inputs, targets); }

nlohmann::json TrainLoader::state() const {
  return {{"format", "moda.train_loader/1"},
          {"seed", opt_.seed},
          {"epoch", epoch_},
          {"cursor", cursor_},
          {"seq_len", opt_.seq_len},
          {"world_size", opt_.world_size},
          {"num_shards", set_.shards().size()},
          {"total_tokens", set_.total_tokens()}};
}

uint64_t TrainLoader::load_state(const nlohmann::json& s) {
  const char* who = "train loader";
  MODA_CHECK(state_field<std::string>(s, who, "format") == "moda.train_loader/1", who, " state: format ",
             s.at("format").dump(), " is not moda.train_loader/1");
  expect_same<int64_t>(s, who, "seq_len", opt_.seq_len);
  expect_same<uint64_t>(s, who, "num_shards", set_.shards().size());
  expect_same<uint64_t>(s, who, "total_tokens", set_.total_tokens());
  const auto saved_world = state_field<int64_t>(s, who, "world_size");
  const auto epoch = state_field<int64_t>(s, who, "epoch");
  const auto cursor = state_field<uint64_t>(s, who, "cursor");
  MODA_CHECK(epoch >= 0, who, " state: epoch ", epoch, " is negative");
  MODA_CHECK(saved_world >= 1, who, " state: world_size ", saved_world, " is not >= 1");
  opt_.seed = state_field<uint64_t>(s, who, "seed");  // the run's seed, with its RNG position
  layout_.index = -1;
  const uint64_t windows = epoch_layout(epoch).windows;
  MODA_CHECK(cursor <= windows / uint64_t(saved_world), who, " state: cursor ", cursor, " is past the ",
             windows / uint64_t(saved_world), " windows per rank of epoch ", epoch, " at world size ", saved_world);
  // The saved ranks took the epoch's permuted positions [0, cursor x saved_world) together, in
  // every world size the same positions: this world continues from there. When that count is not
  // a multiple of this world size, the rest up to the next multiple is skipped (fewer windows
  // than ranks, as an epoch's end skips), and past this world's last full round of the epoch the
  // next draw starts the next epoch, as it would have.
  const uint64_t global = cursor * uint64_t(saved_world), world = uint64_t(opt_.world_size);
  const uint64_t mine = std::min<uint64_t>((global + world - 1) / world, windows / world);
  epoch_ = epoch;
  cursor_ = mine;
  return mine * world > global ? mine * world - global : 0;
}

// ---------------------------------------------------------------------------------------------
// EvalLoader

EvalLoader::EvalLoader(const LoaderOptions& o) : opt_(o), set_((check_options(o, "eval loader"), o.shards)) {
  const uint64_t T = opt_.seq_len;
  uint64_t longest = 0;
  for (const auto& s : set_.shards()) {
    longest = std::max<uint64_t>(longest, s.size());
    const uint64_t predictable = s.size() > 1 ? s.size() - 1 : 0;
    windows_ += (predictable + T - 1) / T;
    targets_ += predictable;
    cumulative_.push_back(windows_);
  }
  window_.resize(std::min<uint64_t>(T + 1, longest));  // a window never holds more than its shard
  MODA_CHECK(windows_ > 0, "eval loader: the shards (first ", set_.shards()[0].path(), ") hold no token to predict");
  const uint64_t per_rank = (windows_ + opt_.world_size - 1) / opt_.world_size;
  batches_ = int64_t((per_rank + opt_.batch_size - 1) / opt_.batch_size);
}

template <typename I>
bool EvalLoader::next_impl(I* inputs, I* targets, int64_t* valid) {
  if (cursor_ >= batches_) return false;
  const int64_t T = opt_.seq_len;
  int64_t n_valid = 0;
  for (int64_t b = 0; b < opt_.batch_size; ++b) {
    I* in = inputs + b * T;
    I* tg = targets + b * T;
    const uint64_t g = uint64_t(cursor_ * opt_.batch_size + b) * opt_.world_size + opt_.rank;
    int64_t n = 0;  // targets in this row
    if (g < windows_) {
      const size_t k = std::upper_bound(cumulative_.begin(), cumulative_.end(), g) - cumulative_.begin();
      const uint64_t start = (g - (k ? cumulative_[k - 1] : 0)) * T;
      const ShardView& s = set_.shards()[k];
      n = int64_t(std::min<uint64_t>(T, s.size() - 1 - start));
      s.read(start, n + 1, window_.data(), opt_.vocab_size);
      std::copy(window_.begin(), window_.begin() + n, in);
      std::copy(window_.begin() + 1, window_.begin() + n + 1, tg);
    }
    std::fill(in + n, in + T, I(0));
    std::fill(tg + n, tg + T, I(kIgnoreIndex));
    n_valid += n;
  }
  ++cursor_;
  if (valid) *valid = n_valid;
  return true;
}

bool EvalLoader::next(int32_t* inputs, int32_t* targets, int64_t* valid) { return next_impl(inputs, targets, valid); }
bool EvalLoader::next(int64_t* inputs, int64_t* targets, int64_t* valid) { return next_impl(inputs, targets, valid); }

nlohmann::json EvalLoader::state() const {
  return {{"format", "moda.eval_loader/1"},
          {"cursor", cursor_},
          {"seq_len", opt_.seq_len},
          {"batch_size", opt_.batch_size},
          {"world_size", opt_.world_size},
          {"num_shards", set_.shards().size()},
          {"total_tokens", set_.total_tokens()}};
}

void EvalLoader::load_state(const nlohmann::json& s) {
  const char* who = "eval loader";
  MODA_CHECK(state_field<std::string>(s, who, "format") == "moda.eval_loader/1", who, " state: format ",
             s.at("format").dump(), " is not moda.eval_loader/1");
  expect_same<int64_t>(s, who, "seq_len", opt_.seq_len);
  expect_same<int64_t>(s, who, "batch_size", opt_.batch_size);
  expect_same<int64_t>(s, who, "world_size", opt_.world_size);
  expect_same<uint64_t>(s, who, "num_shards", set_.shards().size());
  expect_same<uint64_t>(s, who, "total_tokens", set_.total_tokens());
  const auto cursor = state_field<int64_t>(s, who, "cursor");
  MODA_CHECK(cursor >= 0 && cursor <= batches_, who, " state: cursor ", cursor, " is not in [0, ", batches_, "]");
  cursor_ = cursor;
}

}  // namespace moda::data
