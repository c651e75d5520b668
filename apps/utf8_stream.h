#pragma once
// Streaming decoded text whole characters at a time: a byte-level BPE token can end inside a UTF-8
// character, so `moda generate` holds back a trailing sequence that later bytes may still complete.
// Header-only, so the CPU tests check it directly.
#include <cstddef>
#include <string_view>

namespace moda::app {

// How many leading bytes of `pending` can be written now: all but a trailing incomplete UTF-8
// sequence (a lead byte followed by fewer continuation bytes than it announces). Invalid bytes are
// never held back: no later byte can make them valid.
inline size_t utf8_printable_prefix(std::string_view pending) {
  const size_t n = pending.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(pending[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back for the lead byte
    const size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? n - back : n;  // an incomplete sequence waits; anything else goes out
  }
  return n;  // only continuation bytes within reach: a complete 4-byte character or invalid bytes
}

}  // namespace moda::app
