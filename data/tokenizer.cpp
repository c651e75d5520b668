// Tokenizer construction from a spec, training, encoding and decoding (tokenizer_json.cpp: files).
#include "data/tokenizer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>

#include "core/error.h"
#include "data/bpe_train.h"
#include "data/byte_level.h"
#include "data/pretokenize.h"
#include "data/split_patterns.h"
#include "data/unicode_normalize.h"
#include "data/unicode_tables.h"

namespace moda::data {

// Word -> ids, sharded so that threads encoding different files rarely wait on each other.
// Each shard stops growing at a fixed size (like Hugging Face's 10k-entry cache): the words seen
// first in a corpus are the frequent ones, so the hit rate stays high with bounded memory.
struct Tokenizer::WordCache {
  static constexpr size_t kShards = 64, kMaxPerShard = 8192, kMaxWordBytes = 64;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<uint32_t>> map;
  };
  std::array<Shard, kShards> shards;
};

namespace {

bool is_space_at(std::string_view s, size_t i, size_t& len) {
  char32_t c = utf8_decode(s, i, len);
  return c != 0xFFFFFFFF && unicode::is_whitespace(c);
}

// Start of the UTF-8 character that ends just before byte `end` (end > 0).
size_t prev_char_start(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && end - i < 4 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  size_t len;
  utf8_decode(s, i, len);
  return i + len == end ? i : end - 1;
}

bool is_word_char_at(std::string_view s, size_t i) {
  size_t len;
  char32_t c = utf8_decode(s, i, len);
  return c == '_' || (c != 0xFFFFFFFF && (unicode::is_letter(c) || unicode::is_number(c)));
}

}  // namespace

Tokenizer Tokenizer::from_spec(TokenizerSpec spec, const std::string& source) {
  auto where = [&](const std::string& field) { return "tokenizer " + source + ": " + field; };
  Tokenizer t;
  uint32_t max_id = 0;
  std::string max_field = "model.vocab";
  for (auto& [s, id] : spec.vocab)
    if (id >= max_id) max_id = id, max_field = "model.vocab[\"" + s + "\"]";
  for (size_t i = 0; i < spec.added_tokens.size(); ++i)
    if (spec.added_tokens[i].id >= max_id)
      max_id = spec.added_tokens[i].id, max_field = "added_tokens[" + std::to_string(i) + "].id";
  const size_t entries = spec.vocab.size() + spec.added_tokens.size();
  MODA_CHECK(entries > 0, where("model.vocab"), ": the vocabulary is empty");
  // The id tables below have max_id + 1 rows: an absurd id in the file must not allocate
  // gigabytes. Real vocabularies are dense (ids 0..n-1, sometimes a few reserved gaps).
  MODA_CHECK(max_id < kMaxVocabSize, where(max_field), ": id ", max_id, " is over the limit of ", kMaxVocabSize - 1);
  MODA_CHECK(max_id < 2 * entries + 1024, where(max_field), ": id ", max_id, " leaves most ids unused (", entries,
             " tokens in all); ids must be nearly dense, at most 2 x tokens + 1024");
  const size_t n = size_t(max_id) + 1;
  t.id_to_token_.assign(n, "");
  t.id_to_bytes_.assign(n, "");
  t.id_used_.assign(n, 0);

  auto set_id = [&](const std::string& spelling, uint32_t id, const std::string& field) {
    MODA_CHECK(!t.id_used_[id] || t.id_to_token_[id] == spelling, where(field), ": id ", id, " is given to both '",
               t.id_to_token_[id], "' and '", spelling, "'");
    auto [it, fresh] = t.token_ids_.emplace(spelling, id);
    MODA_CHECK(fresh || it->second == id, where(field), ": token '", spelling, "' has id ", id, " but also id ",
               it->second);
    t.id_used_[id] = 1;
    t.id_to_token_[id] = spelling;
    // Hugging Face's ByteLevel decoder: all characters mapped back to bytes, or the UTF-8 as is.
    t.id_to_bytes_[id] = byte_level_decode(spelling).value_or(spelling);
  };
  for (auto& [s, id] : spec.vocab) set_id(s, id, "model.vocab");
  for (size_t i = 0; i < spec.added_tokens.size(); ++i) {
    const auto& a = spec.added_tokens[i];
    MODA_CHECK(!a.content.empty(), where("added_tokens[" + std::to_string(i) + "].content"), ": empty token");
    set_id(a.content, a.id, "added_tokens[" + std::to_string(i) + "]");
    // Hugging Face decodes an added token to its content as is, not through the ByteLevel map
    // (which would turn "naïve", all of whose characters are in the map, into invalid UTF-8).
    t.id_to_bytes_[a.id] = a.content;
  }

  std::array<int64_t, 256> byte_ids;
  std::string missing;
  for (int b = 0; b < 256; ++b) {
    auto it = t.token_ids_.find(byte_to_unicode(uint8_t(b)));
    byte_ids[b] = it == t.token_ids_.end() ? -1 : int64_t(it->second);
    if (byte_ids[b] >= 0) continue;
    if (!missing.empty()) missing += ' ';
    missing += std::to_string(b);
  }

  std::vector<BpeMerge> merges;
  merges.reserve(spec.merges.size());
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [a, b] = spec.merges[r];
    auto field = [&] { return where("model.merges[" + std::to_string(r) + "]"); };
    auto ia = t.token_ids_.find(a), ib = t.token_ids_.find(b), iab = t.token_ids_.find(a + b);
    MODA_CHECK(ia != t.token_ids_.end(), field(), ": '", a, "' is not in model.vocab");
    MODA_CHECK(ib != t.token_ids_.end(), field(), ": '", b, "' is not in model.vocab");
    MODA_CHECK(iab != t.token_ids_.end(), field(), ": the merged token '", a + b, "' is not in model.vocab");
    merges.push_back({ia->second, ib->second, iab->second});
  }

  std::optional<uint32_t> unk;
  if (spec.unk_token) {
    auto it = t.token_ids_.find(*spec.unk_token);
    MODA_CHECK(it != t.token_ids_.end(), where("model.unk_token"), ": '", *spec.unk_token, "' is not in model.vocab");
    unk = it->second;
  }
  if (!missing.empty())
    spdlog::warn("tokenizer {}: no token for byte(s) {}; such bytes encode to {}", source, missing,
                 unk ? "the unk token" : "nothing (dropped, as Hugging Face does)");
  t.model_ = BpeModel(byte_ids, merges, unk, spec.fuse_unk);

  if (spec.ignore_merges)
    for (auto& [s, id] : spec.vocab)
      if (auto bytes = byte_level_decode(s)) t.bytes_ids_.emplace(*bytes, id);

  t.added_ = spec.added_tokens;
  // Hugging Face matches a normalized token in the normalized text, so its content is normalized
  // too (AddedVocabulary::refresh_added_tokens).
  if (spec.nfc)
    for (auto& a : t.added_)
      if (a.normalized) a.content = nfc(a.content);
  std::stable_sort(t.added_.begin(), t.added_.end(), [](const AddedToken& x, const AddedToken& y) {
    return x.content.size() > y.content.size();  // the first match at a position is the longest
  });
  for (uint32_t k = 0; k < t.added_.size(); ++k) {
    const auto& a = t.added_[k];
    t.added_by_byte_[a.normalized ? 1 : 0][uint8_t(a.content[0])].push_back(k);
    if (a.normalized) t.has_normalized_added_ = true;
    if (a.lstrip) t.lstrip_first_byte_[uint8_t(a.content[0])] = true;
    if (a.content.find('\n') != std::string::npos) t.added_has_newline_ = true;
  }
  if (spec.split_regex) {
    t.split_is_gpt2_ = *spec.split_regex == patterns::kGpt2;
    if (!t.split_is_gpt2_) t.split_ = Regex::compile(*spec.split_regex);  // throws naming the pattern
    // Patterns checked to end a piece after the '\n' of "x\ny" (x, y ASCII, not space) whatever
    // follows; o200k's [\r\n/]* for one does not ("x;\n/y" is one piece there).
    t.newline_cut_safe_ =
        t.split_is_gpt2_ || *spec.split_regex == patterns::kCl100k || *spec.split_regex == patterns::kQwen2;
  }
  t.spec_ = std::move(spec);
  t.cache_ = std::make_shared<WordCache>();
  return t;
}

Tokenizer Tokenizer::train(const std::vector<std::string>& texts, size_t vocab_size, const BpeTrainOptions& options) {
  const size_t n_special = options.special_tokens.size();
  MODA_CHECK(vocab_size >= 256 + n_special, "tokenize train: --vocab-size ", vocab_size,
             " is too small: need at least 256 byte tokens + ", n_special, " special tokens");
  size_t total_bytes = 0;
  for (auto& t : texts) total_bytes += t.size();
  MODA_CHECK(total_bytes > 0, "tokenize train: the training text is empty");

  // Count the pre-tokenized words; special tokens in the text delimit words and are not counted.
  std::unordered_map<std::string, uint64_t> counts;
  std::vector<std::string_view> pieces;
  auto count_segment = [&](std::string_view seg) {
    pieces.clear();
    gpt2_pretokenize(seg, pieces);
    for (auto p : pieces) ++counts[std::string(p)];
  };
  for (const auto& text : texts) {
    std::string_view s = text;
    size_t seg = 0;
    for (size_t i = 0; i < s.size();) {
      size_t len = 0;
      for (const auto& sp : options.special_tokens)
        if (!sp.empty() && s.compare(i, sp.size(), sp) == 0) len = std::max(len, sp.size());
      if (!len) {
        ++i;
        continue;
      }
      count_segment(s.substr(seg, i - seg));
      i += len;
      seg = i;
    }
    count_segment(s.substr(seg));
  }

  BpeTrainResult r = train_bpe(counts, vocab_size - n_special, options.min_frequency);
  TokenizerSpec spec;
  for (uint32_t id = 0; id < r.tokens.size(); ++id) spec.vocab.emplace_back(byte_level_encode(r.tokens[id]), id);
  for (auto& m : r.merges)
    spec.merges.emplace_back(byte_level_encode(r.tokens[m.left]), byte_level_encode(r.tokens[m.right]));
  for (const auto& sp : options.special_tokens) {
    AddedToken a;
    a.id = static_cast<uint32_t>(spec.vocab.size());
    a.content = sp;
    spec.vocab.emplace_back(sp, a.id);
    spec.added_tokens.push_back(a);
  }
  if (spec.vocab.size() < vocab_size)
    spdlog::warn("tokenize train: stopped at {} tokens (asked {}): no pair occurs {} or more times", spec.vocab.size(),
                 vocab_size, options.min_frequency);
  spdlog::info("tokenize train: {} distinct words, {} merges, vocabulary {}", counts.size(), spec.merges.size(),
               spec.vocab.size());
  return from_spec(std::move(spec), "trained");
}

std::vector<uint32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode(text, out);
  return out;
}

template <class OnText>
void Tokenizer::split_added(std::string_view s, bool normalized, std::vector<uint32_t>& out, OnText&& on_text) const {
  // Leftmost-longest, as Hugging Face's AddedVocabulary does (tokens are sorted longest first).
  const auto& by_byte = added_by_byte_[normalized ? 1 : 0];
  size_t seg = 0;
  for (size_t i = 0; i < s.size();) {
    const auto& candidates = by_byte[uint8_t(s[i])];
    if (candidates.empty()) {  // most bytes start no added token
      ++i;
      continue;
    }
    const AddedToken* hit = nullptr;
    for (uint32_t k : candidates)
      if (s.compare(i, added_[k].content.size(), added_[k].content) == 0) {
        hit = &added_[k];
        break;
      }
    size_t start = i, end = hit ? i + hit->content.size() : i;
    if (hit && hit->single_word &&
        ((start > 0 && is_word_char_at(s, prev_char_start(s, start))) || (end < s.size() && is_word_char_at(s, end))))
      hit = nullptr;
    if (!hit) {
      ++i;
      continue;
    }
    size_t len;
    if (hit->lstrip)
      while (start > seg) {
        size_t p = prev_char_start(s, start);
        if (!is_space_at(s, p, len)) break;
        start = p;
      }
    if (hit->rstrip)
      while (end < s.size() && is_space_at(s, end, len)) end += len;
    on_text(s.substr(seg, start - seg));
    out.push_back(hit->id);
    seg = i = end;
  }
  on_text(s.substr(seg));
}

void Tokenizer::encode(std::string_view s, std::vector<uint32_t>& out) const {
  // Hugging Face's extract_and_normalize: tokens with normalized=false are cut out of the raw
  // text; the rest is normalized and the normalized=true tokens are cut out of that.
  split_added(s, false, out, [&](std::string_view seg) { encode_normalized(seg, out); });
}

void Tokenizer::encode_normalized(std::string_view segment, std::vector<uint32_t>& out) const {
  if (segment.empty()) return;
  std::string normalized;
  if (spec_.nfc && nfc_normalize(segment, normalized)) segment = normalized;
  if (!has_normalized_added_) {
    encode_segment(segment, out);
    return;
  }
  split_added(segment, true, out, [&](std::string_view seg) { encode_segment(seg, out); });
}

void Tokenizer::encode_segment(std::string_view segment, std::vector<uint32_t>& out) const {
  if (segment.empty()) return;
  if (!spec_.split_regex) {
    encode_byte_level(segment, out);
    return;
  }
  // Split (Isolated) first, then ByteLevel on each piece. The vector is per thread and per
  // nesting level: encode_byte_level below uses its own.
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  if (split_is_gpt2_)
    gpt2_pretokenize(segment, pieces);
  else
    split_->split_isolated(segment, pieces);
  for (auto p : pieces) encode_byte_level(p, out);
}

void Tokenizer::encode_byte_level(std::string_view segment, std::vector<uint32_t>& out) const {
  if (segment.empty()) return;
  std::string prefixed;
  if (spec_.add_prefix_space && segment[0] != ' ') {
    prefixed.reserve(segment.size() + 1);
    prefixed += ' ';
    prefixed += segment;
    segment = prefixed;
  }
  if (!spec_.use_regex) {
    encode_piece(segment, out);
    return;
  }
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  gpt2_pretokenize(segment, pieces);
  for (auto p : pieces) encode_piece(p, out);
}

void Tokenizer::encode_piece(std::string_view piece, std::vector<uint32_t>& out) const {
  if (spec_.ignore_merges) {
    if (auto it = bytes_ids_.find(std::string(piece)); it != bytes_ids_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (piece.size() > WordCache::kMaxWordBytes) {
    model_.encode_word(piece, out);
    return;
  }
  std::string key(piece);
  auto& shard = cache_->shards[std::hash<std::string>{}(key) % WordCache::kShards];
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (auto it = shard.map.find(key); it != shard.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out.size();
  model_.encode_word(piece, out);
  std::lock_guard<std::mutex> lock(shard.mu);
  if (shard.map.size() < WordCache::kMaxPerShard)
    shard.map.emplace(std::move(key), std::vector<uint32_t>(out.begin() + before, out.end()));
}

std::string Tokenizer::decode(std::span<const uint32_t> ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint32_t id = ids[i];
    MODA_CHECK(id < id_used_.size() && id_used_[id], "decode: token id ", id, " at position ", i,
               " is not in the vocabulary (size ", vocab_size(), ")");
    out += id_to_bytes_[id];
  }
  return out;
}

bool Tokenizer::is_split_point(std::string_view s, size_t p) const {
  if (p == 0 || p >= s.size()) return true;
  if (spec_.add_prefix_space || added_has_newline_ || !newline_cut_safe_ || p < 2) return false;
  if (!spec_.use_regex && !spec_.split_regex) return false;  // one piece: every cut changes it
  // "x\ny" cut after '\n': the regex ends a piece there whether or not text follows ("\n" alone
  // matches both `\s+(?!\S)` at the end and `\s+` before 'y'). A longer whitespace run would
  // not do: at the end of a chunk `\s+(?!\S)` would take all of it, before 'y' all but one.
  auto ascii_nonspace = [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x80 && u != ' ' && !(u >= 0x09 && u <= 0x0D);
  };
  return s[p - 1] == '\n' && ascii_nonspace(s[p - 2]) && ascii_nonspace(s[p]) && !lstrip_first_byte_[uint8_t(s[p])];
}

uint32_t Tokenizer::eot_id() const {
  auto id = token_to_id(kEndOfText);
  MODA_CHECK(id.has_value(), "the tokenizer has no ", kEndOfText, " token");
  return *id;
}

std::optional<uint32_t> Tokenizer::token_to_id(std::string_view spelling) const {
  auto it = token_ids_.find(std::string(spelling));
  if (it == token_ids_.end()) return std::nullopt;
  return it->second;
}

const std::string& Tokenizer::id_to_token(uint32_t id) const {
  MODA_CHECK(id < id_used_.size() && id_used_[id], "token id ", id, " is not in the vocabulary (size ", vocab_size(),
             ")");
  return id_to_token_[id];
}

}  // namespace moda::data
