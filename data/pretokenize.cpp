#include "data/pretokenize.h"

#include "data/unicode_tables.h"

namespace moda::data {

char32_t utf8_decode(std::string_view s, size_t i, size_t& len) {
  constexpr char32_t kInvalid = 0xFFFFFFFF;
  const auto b0 = static_cast<unsigned char>(s[i]);
  len = 1;
  if (b0 < 0x80) return b0;
  size_t need;
  char32_t cp, min;
  if ((b0 & 0xE0) == 0xC0)
    need = 1, cp = b0 & 0x1F, min = 0x80;
  else if ((b0 & 0xF0) == 0xE0)
    need = 2, cp = b0 & 0x0F, min = 0x800;
  else if ((b0 & 0xF8) == 0xF0)
    need = 3, cp = b0 & 0x07, min = 0x10000;
  else
    return kInvalid;
  if (i + need >= s.size()) return kInvalid;  // truncated sequence
  for (size_t k = 1; k <= need; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return kInvalid;
    cp = (cp << 6) | (b & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not characters: treat the lead byte
  // alone as invalid, like a decoder that replaces errors byte by byte.
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;
  len = need + 1;
  return cp;
}

namespace {

enum class Cls { Letter, Number, Space, Other };

Cls classify(char32_t c) {
  if (c == 0xFFFFFFFF) return Cls::Other;
  if (unicode::is_whitespace(c)) return Cls::Space;
  if (unicode::is_letter(c)) return Cls::Letter;
  if (unicode::is_number(c)) return Cls::Number;
  return Cls::Other;
}

// Length of a contraction ('s 't 're 've 'm 'll 'd; case-sensitive as in GPT-2) at i, or 0.
size_t contraction(std::string_view s, size_t i) {
  if (s[i] != '\'' || i + 1 >= s.size()) return 0;
  const char a = s[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= s.size()) return 0;
  const char b = s[i + 2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

}  // namespace

void gpt2_pretokenize(std::string_view s, std::vector<std::string_view>& out) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (size_t c = contraction(s, i)) {
      out.push_back(s.substr(i, c));
      i += c;
      continue;
    }
    size_t len;
    Cls cls = classify(utf8_decode(s, i, len));
    size_t start = i;  // where the class run starts (after an optional ' ')
    if (s[i] == ' ' && i + 1 < n) {
      size_t len2;
      Cls next = classify(utf8_decode(s, i + 1, len2));
      if (next != Cls::Space) cls = next, start = i + 1, len = len2;
    }
    if (cls != Cls::Space) {
      // ` ?\p{L}+`, ` ?\p{N}+` or ` ?[^\s\p{L}\p{N}]+`: a greedy run of one class.
      size_t j = start + len;
      while (j < n) {
        size_t l;
        if (classify(utf8_decode(s, j, l)) != cls) break;
        j += l;
      }
      out.push_back(s.substr(i, j - i));
      i = j;
      continue;
    }
    // Whitespace run [i, j). `\s+(?!\S)` backs off one character when non-space follows, so
    // that character's leading space can join the next word; a single space falls to `\s+`.
    size_t j = i, last = i, chars = 0;
    while (j < n) {
      size_t l;
      if (classify(utf8_decode(s, j, l)) != Cls::Space) break;
      last = j, j += l, ++chars;
    }
    size_t end = (j < n && chars >= 2) ? last : j;
    out.push_back(s.substr(i, end - i));
    i = end;
  }
}

}  // namespace moda::data
