#pragma once
// Byte-level BPE tokenizer stored in Hugging Face's tokenizer.json layout: model BPE (vocab,
// merges as "a b" strings or [a, b] pairs), pre_tokenizer ByteLevel (GPT-2 regex split,
// add_prefix_space) or Sequence[Split(Regex, Isolated), ByteLevel(use_regex false)] (Llama 3,
// OLMo 2, Qwen 2: data/regex.h), normalizer null or NFC, decoder ByteLevel, added_tokens such as
// <|endoftext|> or <|begin_of_text|>.
// A file made by Hugging Face `tokenizers` for this kind of tokenizer encodes to the same ids
// here as there (tests/cpu/test_tokenizer_hf.cpp); the supported subset is listed in
// docs/data-formats.md, and anything outside it is refused with an error naming the field.
//
// encode() is the library's `encode(text, add_special_tokens=False)`: added tokens found in the
// text are emitted as their ids (those with normalized=false in the raw text, then the others in
// the normalized text), the rest is normalized, split by the pre-tokenizer regex, byte-mapped
// and merged.
// decode() returns the raw bytes (Hugging Face would replace invalid UTF-8 by U+FFFD).
// encode() and decode() are thread-safe (the word cache is sharded and locked).
#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/bpe.h"
#include "data/regex.h"

namespace moda::data {

// Largest vocabulary accepted (ids below 2^24; the largest public vocabularies hold ~256k).
constexpr uint32_t kMaxVocabSize = uint32_t(1) << 24;

struct AddedToken {
  uint32_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = true;
};

// Everything tokenizer.json holds that matters here; what load() reads and save() writes.
struct TokenizerSpec {
  std::vector<std::pair<std::string, uint32_t>> vocab;      // model.vocab: spelling -> id
  std::vector<std::pair<std::string, std::string>> merges;  // model.merges, rank order
  std::vector<AddedToken> added_tokens;
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool ignore_merges = false;     // a word that is itself a token skips the merges (newer HF)
  bool add_prefix_space = false;  // ByteLevel: prepend ' ' to each segment not starting with one
  bool use_regex = true;          // ByteLevel: split with the GPT-2 regex (false: no split)
  // Split pre-tokenizer (behavior Isolated) before ByteLevel: its regex (data/regex.h).
  std::optional<std::string> split_regex;
  bool nfc = false;  // normalizer NFC
};

struct BpeTrainOptions {
  std::vector<std::string> special_tokens = {"<|endoftext|>"};  // get the last ids
  uint64_t min_frequency = 2;                                   // a pair seen fewer times is never merged
};

class Tokenizer {
 public:
  static constexpr const char* kEndOfText = "<|endoftext|>";

  // Reads tokenizer.json; throws moda::Error naming the file and the offending field.
  static Tokenizer load(const std::string& path);
  // `source` names the origin in error messages.
  static Tokenizer from_json(const nlohmann::json& j, const std::string& source = "tokenizer.json");
  static Tokenizer from_spec(TokenizerSpec spec, const std::string& source = "tokenizer spec");

  // Trains on `texts` (each split around the special tokens, then by the GPT-2 regex) until the
  // vocabulary, special tokens included, has `vocab_size` entries or no pair repeats enough.
  static Tokenizer train(const std::vector<std::string>& texts, size_t vocab_size, const BpeTrainOptions& options = {});

  nlohmann::ordered_json to_json() const;
  void save(const std::string& path) const;  // atomically: temp file, then rename

  std::vector<uint32_t> encode(std::string_view text) const;
  void encode(std::string_view text, std::vector<uint32_t>& out) const;  // appends
  std::string decode(std::span<const uint32_t> ids) const;

  // True when encoding text[0, p) and text[p, end) separately gives the same ids as encoding the
  // whole text, checked locally around p (a single '\n' between ASCII non-space characters, no
  // added token that could reach across). Lets big inputs be cut into chunks encoded in parallel
  // with a result independent of the chunking. Always false inside text with add_prefix_space,
  // with neither regex (ByteLevel use_regex false and no Split), or with a Split regex not checked
  // to end a piece there (only GPT-2's, cl100k's and Qwen 2's are), where a cut may change the
  // result.
  bool is_split_point(std::string_view text, size_t p) const;

  size_t vocab_size() const { return id_to_bytes_.size(); }  // 1 + largest id
  size_t num_merges() const { return spec_.merges.size(); }
  uint32_t eot_id() const;  // id of <|endoftext|>; throws when the tokenizer has none
  std::optional<uint32_t> token_to_id(std::string_view spelling) const;
  const std::string& id_to_token(uint32_t id) const;  // tokenizer.json spelling
  const TokenizerSpec& spec() const { return spec_; }

 private:
  struct WordCache;
  // Cuts the added tokens of one kind (normalized or not) out of `s`: their ids go to `out`, the
  // text between them to `on_text`.
  template <class OnText>
  void split_added(std::string_view s, bool normalized, std::vector<uint32_t>& out, OnText&& on_text) const;
  void encode_normalized(std::string_view segment, std::vector<uint32_t>& out) const;  // pass 2
  void encode_segment(std::string_view segment, std::vector<uint32_t>& out) const;     // pre-tokenize
  void encode_byte_level(std::string_view piece, std::vector<uint32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<uint32_t>& out) const;

  TokenizerSpec spec_;
  BpeModel model_;
  std::vector<std::string> id_to_token_;  // "" for ids no token uses
  std::vector<std::string> id_to_bytes_;  // what decode() emits per id
  std::vector<uint8_t> id_used_;
  std::unordered_map<std::string, uint32_t> token_ids_;  // spelling -> id (vocab + added)
  std::unordered_map<std::string, uint32_t> bytes_ids_;  // raw bytes -> id (for ignore_merges)
  std::vector<AddedToken> added_;  // longest first; content NFC-normalized where normalized && nfc
  // Indices into added_ (longest first) by first byte, per pass: [0] normalized=false, [1] true.
  std::array<std::array<std::vector<uint32_t>, 256>, 2> added_by_byte_;
  bool has_normalized_added_ = false;
  std::optional<Regex> split_;  // the Split regex, unless it is GPT-2's (then gpt2_pretokenize)
  bool split_is_gpt2_ = false;
  bool newline_cut_safe_ = true;               // the Split regex always ends a piece at "x\n|y" (is_split_point)
  std::array<bool, 256> lstrip_first_byte_{};  // first bytes of added tokens with lstrip
  bool added_has_newline_ = false;
  std::shared_ptr<WordCache> cache_;
};

}  // namespace moda::data
