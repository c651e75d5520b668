// apps/utf8_stream.h: which bytes `moda generate` may print while tokens still arrive.
#include <catch2/catch.hpp>
#include <string>

#include "apps/utf8_stream.h"

using moda::app::utf8_printable_prefix;

TEST_CASE("utf8 stream: a character cut anywhere waits for its rest, nothing else waits", "[cpu]") {
  // 1-, 2-, 3- and 4-byte characters: every proper prefix of one is held back, the whole goes out.
  for (std::string ch :
       {std::string("a"), std::string("\xC3\xA9"), std::string("\xE2\x82\xAC"), std::string("\xF0\x9F\x98\x80")}) {
    const std::string before = "ok ";
    for (size_t cut = 1; cut < ch.size(); ++cut) {
      INFO("character of " << ch.size() << " bytes cut after " << cut);
      CHECK(utf8_printable_prefix(before + ch.substr(0, cut)) == before.size());
    }
    CHECK(utf8_printable_prefix(before + ch) == before.size() + ch.size());
  }
  CHECK(utf8_printable_prefix("") == 0);
  CHECK(utf8_printable_prefix("\xE2\x82") == 0);
}

TEST_CASE("utf8 stream: invalid bytes are not held back", "[cpu]") {
  CHECK(utf8_printable_prefix("x\x80") == 2);             // a stray continuation byte
  CHECK(utf8_printable_prefix("\x80\x80\x80\x80") == 4);  // continuation bytes only
  CHECK(utf8_printable_prefix("\xC3"
                              "A") == 2);                 // a lead byte followed by a non-continuation
  CHECK(utf8_printable_prefix("a\xFF") == 2);             // bytes that never start a character
  CHECK(utf8_printable_prefix("\xE2\x82\xAC\x80") == 4);  // a complete character, then a stray byte
}
