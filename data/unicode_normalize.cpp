#include "data/unicode_normalize.h"

#include <algorithm>
#include <vector>

#include "data/nfc_tables.h"
#include "data/pretokenize.h"

namespace moda::data {

namespace {

// Hangul syllables are decomposed and composed by arithmetic (Unicode ch. 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

// An invalid UTF-8 byte travels through as this marker (above U+10FFFF): a starter that
// composes with nothing, written back as the original byte.
constexpr char32_t kRawByte = 0x110000;

bool is_raw_byte(char32_t c) { return c >= kRawByte; }

uint8_t ccc_of(char32_t c) { return is_raw_byte(c) ? 0 : unicode::combining_class(c); }

void decompose(char32_t c, std::vector<char32_t>& out) {
  if (c < 0xC0) {  // nothing below U+00C0 decomposes
    out.push_back(c);
    return;
  }
  if (c >= kSBase && c < kSBase + kSCount) {
    const char32_t s = c - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  auto d = is_raw_byte(c) ? std::span<const char32_t>{} : unicode::canonical_decomposition(c);
  if (d.empty())
    out.push_back(c);
  else
    out.insert(out.end(), d.begin(), d.end());
}

char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  if (is_raw_byte(a) || is_raw_byte(b)) return 0;
  return unicode::compose_pair(a, b);
}

void append_utf8(char32_t c, std::string& out) {
  if (is_raw_byte(c)) {
    out += static_cast<char>(c - kRawByte);
  } else if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

}  // namespace

bool nfc_normalize(std::string_view text, std::string& out) {
  // Quick check: ASCII and everything below U+0300 is safe, so most text costs one byte scan.
  bool may_change = false;
  for (size_t i = 0, len; i < text.size(); i += len) {
    if (static_cast<unsigned char>(text[i]) < 0xCC) {  // lead bytes below 0xCC: code points < U+0300
      len = 1;
      continue;
    }
    const char32_t c = utf8_decode(text, i, len);
    if (c != 0xFFFFFFFF && unicode::nfc_may_change(c)) {
      may_change = true;
      break;
    }
  }
  if (!may_change) return false;

  // 1. Full canonical decomposition.
  std::vector<char32_t> cps;
  cps.reserve(text.size());
  for (size_t i = 0, len; i < text.size(); i += len) {
    const char32_t c = utf8_decode(text, i, len);
    decompose(c == 0xFFFFFFFF ? kRawByte + static_cast<unsigned char>(text[i]) : c, cps);
  }
  // 2. Canonical ordering: each run of non-starters sorted by combining class, stably.
  for (size_t i = 0; i < cps.size();) {
    if (ccc_of(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && ccc_of(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j, [](char32_t a, char32_t b) { return ccc_of(a) < ccc_of(b); });
    i = j;
  }
  // 3. Canonical composition: a character joins the last starter when nothing between them
  // blocks it (a blocker has a combining class of 0 or not below its own).
  size_t starter = SIZE_MAX, w = 0;
  int last_ccc = -1;  // class of the last character kept after the starter; -1: none yet
  for (size_t r = 0; r < cps.size(); ++r) {
    const char32_t c = cps[r];
    const int cc = ccc_of(c);
    // Every second half of a composition is at U+0300 or above (asserted by gen_nfc_tables.py).
    if (c >= 0x300 && starter != SIZE_MAX && (last_ccc == -1 || (last_ccc != 0 && last_ccc < cc))) {
      if (char32_t composite = compose(cps[starter], c)) {
        cps[starter] = composite;
        continue;
      }
    }
    if (cc == 0) {
      starter = w;
      last_ccc = -1;
    } else {
      last_ccc = cc;
    }
    cps[w++] = c;
  }
  cps.resize(w);
  out.clear();
  out.reserve(text.size());
  for (char32_t c : cps) append_utf8(c, out);
  return true;
}

std::string nfc(std::string_view text) {
  std::string out;
  return nfc_normalize(text, out) ? out : std::string(text);
}

}  // namespace moda::data
