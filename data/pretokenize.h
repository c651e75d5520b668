#pragma once
// The GPT-2 pre-tokenizer, written by hand on UTF-8 (no regex engine). It splits text exactly like
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// as Hugging Face `tokenizers` (Oniguruma) and OpenAI's GPT-2 encoder apply it: the first
// alternative that matches at the current position wins, each class run is greedy, and the
// pieces cover the text without gaps. A byte that is not valid UTF-8 counts as one character of
// the "other" class, so any byte string splits (and round-trips) without an error.
#include <cstddef>
#include <string_view>
#include <vector>

namespace moda::data {

// Appends the pieces of `text` to `out` (views into `text`).
void gpt2_pretokenize(std::string_view text, std::vector<std::string_view>& out);

// Decodes the UTF-8 character starting at text[i]; sets `len` to its byte length (1 for an
// invalid or truncated sequence, whose code point is returned as 0xFFFFFFFF).
char32_t utf8_decode(std::string_view text, size_t i, size_t& len);

}  // namespace moda::data
