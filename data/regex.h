#pragma once
// A small backtracking regex engine over Unicode code points, for the Split pre-tokenizer
// patterns that tokenizer.json files ship (GPT-2, cl100k / Llama 3 / OLMo 2, Qwen 2, o200k).
// Semantics are Oniguruma's (the engine behind Hugging Face `tokenizers`): leftmost-first
// alternation, greedy quantifiers, backtracking. Supported syntax, and nothing else:
//   literals (any code point; `\` before punctuation; \t \n \r \f \v \e)
//   classes [...] and [^...] holding literals, ranges a-z, \p{..}, \P{..}, \s, \S, \d, \w
//   \p{X} / \P{X} for a general category or a group of them (L Lu Ll Lt Lm Lo M Mn Mc Me N Nd
//   Nl No P.. S.. Z.. C..), \s \S (White_Space), \d (Nd), \w (L, M, Nd, Pc), also outside classes
//   groups (...), (?:...), (?i:...) (case-insensitive: simple case folding), (?i) up to the end
//   of the enclosing group, lookahead (?=...) and (?!...)
//   quantifiers ? * + {n} {n,} {n,m} (greedy only)
// `.` anchors, backreferences, lazy or possessive quantifiers and lookbehind are refused at
// compile time with the pattern and the character position.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moda::data {

class Regex {
 public:
  // Throws moda::Error "regex 'PATTERN': at character N: what is wrong" for anything unsupported.
  static Regex compile(std::string_view pattern);

  // Splits `text` like Hugging Face's Split pre-tokenizer with behavior Isolated: every
  // non-overlapping leftmost match becomes a piece, and so does each gap between matches.
  // Appends views into `text`; empty matches give no piece. Bytes that are not valid UTF-8 are
  // single characters of no category (they match only negated classes such as [^\s]).
  void split_isolated(std::string_view text, std::vector<std::string_view>& out) const;

  // The byte length of the match starting exactly at text[pos], if one does.
  std::optional<size_t> match_at(std::string_view text, size_t pos) const;

  const std::string& pattern() const { return pattern_; }

  struct Program;  // classes and the backtracking program (regex.cpp)

 private:
  std::string pattern_;
  std::shared_ptr<const Program> prog_;  // immutable once compiled: matching is thread-safe
};

}  // namespace moda::data
