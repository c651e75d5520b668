// NFC normalization (data/unicode_normalize.h) on the standard cases of UAX #15; expected values
// checked with Python's unicodedata.normalize("NFC", ...) (Unicode 14).
#include <catch2/catch.hpp>
#include <string>

#include "data/unicode_normalize.h"

using moda::data::nfc;
using moda::data::nfc_normalize;

TEST_CASE("nfc: composes decomposed accents", "[cpu][data][nfc]") {
  CHECK(nfc("Cafe\u0301") == "Caf\u00E9");
  CHECK(nfc("A\u030Angstro\u0308m") == "\u00C5ngstr\u00F6m");
  CHECK(nfc("e\u0301\u0301") == "\u00E9\u0301");  // the second accent has nothing left to join
  CHECK(nfc("\u00C5\u0301") == "\u01FA");         // Å + acute: decomposed, then composed twice
  CHECK(nfc("I\u0308\u0301") == "\u1E2E");
}

TEST_CASE("nfc: singletons and excluded compositions decompose", "[cpu][data][nfc]") {
  CHECK(nfc("\u212B") == "\u00C5");        // ANGSTROM SIGN -> Å
  CHECK(nfc("\u2126") == "\u03A9");        // OHM SIGN -> Ω
  CHECK(nfc("\u0344") == "\u0308\u0301");  // a non-starter decomposition is never recomposed
  CHECK(nfc("\u0958") == "\u0915\u093C");  // a composition exclusion (Devanagari QA)
  CHECK(nfc("\u0915\u093C") == "\u0915\u093C");
}

TEST_CASE("nfc: canonical reordering of combining marks", "[cpu][data][nfc]") {
  CHECK(nfc("q\u0307\u0323") == "q\u0323\u0307");  // dot below (220) before dot above (230)
  CHECK(nfc("q\u0323\u0307") == "q\u0323\u0307");
  CHECK(nfc("\u1E0B\u0323") == "\u1E0D\u0307");   // ḋ + dot below -> ḍ + dot above
  CHECK(nfc("a\u0301\u0328") == "\u0105\u0301");  // ogonek (202) moves first and composes
}

TEST_CASE("nfc: Hangul jamo compose by arithmetic", "[cpu][data][nfc]") {
  CHECK(nfc("\u1112\u1161\u11AB\u1100\u1173\u11AF") == "\uD55C\uAE00");  // 한글
  CHECK(nfc("\u1100\u1161\u11A8") == "\uAC01");                          // L V T
  CHECK(nfc("\uAC00\u11A8") == "\uAC01");                                // LV syllable + T
  CHECK(nfc("\u1100\u1161") == "\uAC00");
  CHECK(nfc("\u1100x\u1161") == "\u1100x\u1161");  // not adjacent: nothing composes
}

TEST_CASE("nfc: text already in NFC is returned without a copy", "[cpu][data][nfc]") {
  std::string out = "untouched";
  for (const char* text : {"", "plain ASCII text\r\n", "Caf\u00E9 na\u00EFve \u00C5", "\uD55C\uAE00 \u65E5\u672C",
                           "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9"}) {
    INFO(text);
    CHECK_FALSE(nfc_normalize(text, out));
    CHECK(out == "untouched");
    CHECK(nfc(text) == text);
  }
  CHECK(nfc_normalize("e\u0301", out));
  CHECK(out == "\u00E9");
}

TEST_CASE("nfc: bytes that are not UTF-8 pass through and block composition", "[cpu][data][nfc]") {
  CHECK(nfc(std::string("e\xFF\u0301")) == std::string("e\xFF\u0301"));
  CHECK(nfc(std::string("\xFF"
                        "e\u0301")) == std::string("\xFF\u00E9"));
}

TEST_CASE("nfc: normalizing twice changes nothing", "[cpu][data][nfc]") {
  for (const char* text : {"Cafe\u0301 q\u0307\u0323 \u212B \u1100\u1161\u11A8 \u0344", "\u1E0B\u0323\u0301e\u0301"}) {
    const std::string once = nfc(text);
    CHECK(nfc(once) == once);
  }
}
