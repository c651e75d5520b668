// The pre-tokenizer regex engine (data/regex.h): each supported feature, leftmost-first
// semantics, the shipped patterns on tricky text, errors naming the position, and the regex
// giving the same pieces as the hand-written GPT-2 splitter on real text.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/io.h"
#include "data/pretokenize.h"
#include "data/regex.h"
#include "data/split_patterns.h"

using moda::data::Regex;
namespace patterns = moda::data::patterns;

namespace {

std::vector<std::string> split(const std::string& pattern, std::string_view text) {
  std::vector<std::string_view> views;
  Regex::compile(pattern).split_isolated(text, views);
  return {views.begin(), views.end()};
}

// Length of the match at the start of `text`, -1 for none.
long match(const std::string& pattern, std::string_view text) {
  auto m = Regex::compile(pattern).match_at(text, 0);
  return m ? long(*m) : -1;
}

std::string compile_error(const std::string& pattern) {
  try {
    Regex::compile(pattern);
  } catch (const moda::Error& e) {
    return e.what();
  }
  return "(no error)";
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("regex: literals, escapes and classes", "[cpu][data][regex]") {
  CHECK(match("abc", "abcd") == 3);
  CHECK(match("abc", "abd") == -1);
  CHECK(match("\\.\\\\\\/", ".\\/") == 3);
  CHECK(match("\\r\\n\\t", "\r\n\t") == 3);
  CHECK(match("[a-c]+", "abcabd") == 5);
  CHECK(match("[^a-c]+", "xyzab") == 3);
  CHECK(match("[\\r\\n]+", "\r\n\r\nx") == 4);
  CHECK(match("[^\\r\\n]+", "ab\ncd") == 2);
  CHECK(match("[-a]+", "-a-b") == 3);  // '-' first in a class is a literal
  CHECK(match("é+", "ééx") == 4);      // a non-ASCII literal is one code point (2 bytes each)
  CHECK(match("[é-ë]", "ê") == 2);
  CHECK(match("\\d+", "٣4x") == 3);     // \d is Unicode Nd
  CHECK(match("\\w+", "été_1-") == 7);  // letters, digits, connector punctuation
  CHECK(match("[\\S]+", "ab c") == 2);
  CHECK(match("[\\P{L}]+", "1,a") == 2);
  CHECK(match("\\p{^N}+", "ab1") == 2);
}

TEST_CASE("regex: Unicode properties and the whitespace class", "[cpu][data][regex]") {
  CHECK(match("\\p{L}+", "Ελληνικά1") == 16);  // Greek letters, 2 bytes each
  CHECK(match("\\p{N}+", "٣٤٥x") == 6);        // Arabic-Indic digits
  CHECK(match("\\p{N}+", "½Ⅻ①") == 8);         // No, Nl, No
  CHECK(match("\\p{Lu}+", "ÀBcd") == 3);       // upper case only
  CHECK(match("\\p{Ll}+", "ßab") == 4);
  CHECK(match("\\p{Lt}", "ǅ") == 2);  // title case digraph
  CHECK(match("\\p{Lm}", "ʰ") == 2);  // modifier letter
  CHECK(match("\\p{Lo}+", "日本") == 6);
  CHECK(match("\\p{M}+", "\xCC\x81\xCC\x88") == 4);  // two combining marks
  CHECK(match("[\\p{L}\\p{M}]+", "मैं") == 9);         // Devanagari letter + vowel sign + mark
  CHECK(match("\\P{L}+", "12ab") == 2);
  CHECK(match("\\s+", " \t\n\r\xC2\xA0\xE3\x80\x80x") == 9);  // incl. NBSP and U+3000
  CHECK(match("\\S+", "ab c") == 2);
  CHECK(match("[^\\s\\p{L}\\p{N}]+", "!?€😀 a") == 9);  // punctuation, symbols, emoji
  CHECK(match("\\p{L}", "\xFF") == -1);                // a byte that is not UTF-8: no category
  CHECK(match("[^\\s\\p{L}\\p{N}]", "\xFF") == 1);
}

TEST_CASE("regex: quantifiers are greedy and give back", "[cpu][data][regex]") {
  CHECK(match("a?", "aa") == 1);
  CHECK(match("a?", "b") == 0);
  CHECK(match("a*", "aaab") == 3);
  CHECK(match("a+", "b") == -1);
  CHECK(match("a{2}", "aaa") == 2);
  CHECK(match("a{2}", "a") == -1);
  CHECK(match("a{2,}", "aaaa") == 4);
  CHECK(match("a{1,3}", "aaaaa") == 3);
  CHECK(match("a{,2}", "aaa") == 2);
  CHECK(match("x?|y", "y") == 0);              // an alternative that matches empty wins when it comes first
  CHECK(match("a*ab", "aaab") == 4);           // the run gives back one 'a'
  CHECK(match("(?:ab){1,2}c", "ababc") == 5);  // a repeated group
  CHECK(match("(?:ab)+", "ababa") == 4);
  CHECK(match("(?:ab)*abc", "abababc") == 7);  // a group loop backtracks too
  CHECK(split("\\p{N}{1,3}", "1234567") == V{"123", "456", "7"});
}

TEST_CASE("regex: alternation is leftmost-first, not longest", "[cpu][data][regex]") {
  CHECK(match("a|ab", "ab") == 1);
  CHECK(match("ab|a", "ab") == 2);
  CHECK(match("(?:a|ab)c", "abc") == 3);  // backtracks into the second alternative
  CHECK(split("'s|'t|'re|\\p{L}+", "it's they're") == V{"it", "'s", " ", "they", "'re"});
}

TEST_CASE("regex: case-insensitive groups", "[cpu][data][regex]") {
  const std::string contractions = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
  CHECK(match(contractions, "'S") == 2);
  CHECK(match(contractions, "'LL") == 3);
  CHECK(match(contractions, "'Re") == 3);
  CHECK(match(contractions, "'x") == -1);
  CHECK(match(contractions, "'\xC5\xBF") == 3);  // U+017F LONG S folds to s (Unicode simple folding)
  CHECK(match("(?i:k)", "\xE2\x84\xAA") == 3);   // U+212A KELVIN SIGN folds to k
  CHECK(match("'s", "'S") == -1);                // case-sensitive outside the group
  CHECK(match("(?i:[a-c])+", "aBC") == 3);
  CHECK(match("(?i)ab|cd", "CD") == 2);  // an inline (?i) reaches the later alternatives
  CHECK(match("a(?i:b)c", "aBC") == -1);
  CHECK(match("(?i:a(?-i:b))", "Ab") == 2);
  CHECK(match("(?i:a(?-i:b))", "AB") == -1);
}

TEST_CASE("regex: lookahead", "[cpu][data][regex]") {
  // GPT-2's \s+(?!\S): a run of spaces before a word leaves its last space to the word.
  CHECK(match("\\s+(?!\\S)", "   x") == 2);
  CHECK(match("\\s+(?!\\S)", "   ") == 3);
  CHECK(match("\\s+(?!\\S)", " x") == -1);
  CHECK(match("a(?=b)", "ab") == 1);
  CHECK(match("a(?=b)", "ac") == -1);
  CHECK(match("a(?!b)", "ac") == 1);
}

TEST_CASE("regex: catastrophic backtracking stops with an error", "[cpu][data][regex]") {
  const Regex re = Regex::compile("(?:a|aa)+b");  // exponentially many ways to split a run of a
  std::vector<std::string_view> v;
  CHECK_THROWS_WITH(re.split_isolated(std::string(60, 'a'), v),
                    Catch::Contains("regex '(?:a|aa)+b': over 10000000 backtracking steps"));
}

TEST_CASE("regex: split_isolated keeps the gaps and covers the text", "[cpu][data][regex]") {
  CHECK(split("\\p{N}+", "ab12cd3") == V{"ab", "12", "cd", "3"});
  CHECK(split("x", "") == V{});
  CHECK(split("x", "abc") == V{"abc"});
  CHECK(split("b?", "abc") == V{"a", "b", "c"});  // empty matches end gaps but are no pieces
}

TEST_CASE("regex: the shipped patterns split tricky text", "[cpu][data][regex]") {
  // Expected pieces worked out by hand from the patterns' leftmost-first rules.
  CHECK(split(patterns::kCl100k, "DON'T I'LL We'Re") == V{"DON", "'T", " I", "'LL", " We", "'Re"});
  CHECK(split(patterns::kGpt2, "DON'T") == V{"DON", "'", "T"});  // GPT-2 is case-sensitive
  CHECK(split(patterns::kCl100k, "1234567 3.14159") == V{"123", "456", "7", " ", "3", ".", "141", "59"});
  CHECK(split(patterns::kQwen2, "2026-12") == V{"2", "0", "2", "6", "-", "1", "2"});
  CHECK(split(patterns::kCl100k, "a\r\nb") == V{"a", "\r\n", "b"});
  CHECK(split(patterns::kCl100k, "x;\r\n\r\ny") == V{"x", ";\r\n\r\n", "y"});
  CHECK(split(patterns::kCl100k, "a  \n\tb") == V{"a", "  \n", "\tb"});  // a tab may lead a word
  CHECK(split(patterns::kCl100k, "a   b") == V{"a", "  ", " b"});
  CHECK(split(patterns::kCl100k, "(hello") == V{"(hello"});  // one non-letter joins the word
  CHECK(split(patterns::kCl100k, "\nhello") == V{"\n", "hello"});
  CHECK(split(patterns::kO200k, "HelloWorld's JSONParser") == V{"Hello", "World's", " JSONParser"});
  CHECK(split(patterns::kO200k, "a;\n/b") == V{"a", ";\n/", "b"});
}

TEST_CASE("regex: unsupported syntax fails naming the pattern and position", "[cpu][data][regex]") {
  CHECK_THAT(compile_error("ab.c"), Catch::Contains("regex 'ab.c': at character 2: '.' is not supported"));
  CHECK_THAT(compile_error("a+?"), Catch::Contains("at character 2: lazy and possessive"));
  CHECK_THAT(compile_error("a++"), Catch::Contains("lazy and possessive"));
  CHECK_THAT(compile_error("(?<=a)b"), Catch::Contains("at character 2: group kind '(?<'"));
  CHECK_THAT(compile_error("\\p{Han}"), Catch::Contains("at character 0: \\p{Han} is not supported"));
  CHECK_THAT(compile_error("(ab"), Catch::Contains("at character 0: '(' is not closed"));
  CHECK_THAT(compile_error("ab)"), Catch::Contains("at character 2: unmatched ')'"));
  CHECK_THAT(compile_error("[ab"), Catch::Contains("'[' is not closed"));
  CHECK_THAT(compile_error("^a"), Catch::Contains("anchors"));
  CHECK_THAT(compile_error("\\1"), Catch::Contains("escape '\\1' is not supported"));
  CHECK_THAT(compile_error("(?:a?)*"), Catch::Contains("can match the empty string"));
  CHECK_THAT(compile_error("a{3,2}"), Catch::Contains("m < n"));
  CHECK_THAT(compile_error("(?i:é)"), Catch::Contains("non-ASCII letters"));
  CHECK_THAT(compile_error("*a"), Catch::Contains("nothing to repeat"));
  for (const char* p : {patterns::kGpt2, patterns::kCl100k, patterns::kQwen2, patterns::kO200k})
    CHECK_NOTHROW(Regex::compile(p));
}

TEST_CASE("regex: GPT-2's pattern splits like the hand-written splitter", "[cpu][data][regex]") {
  // The tokenizer keeps data/pretokenize.cpp as GPT-2's fast path; both must agree everywhere.
  const Regex re = Regex::compile(patterns::kGpt2);
  std::vector<std::string> texts = {
      "I'm sure you'll see they're right: DON'T 'Twas",
      "x                                        y\n\n\n\n\n\n\nz",
      "Multiple   spaces,\ttabs\t\tand  trailing spaces   ",
      "Lines\n\nwith\r\nCRLF\r\n\n\n   indented\n\tcode();\n",
      "Emoji: 😀 👩‍💻 🇩🇪 ✨🎉 → ≤ ≥ ∑ € £ ¥ © \xC2\xA0nbsp \xE3\x80\x80ideographic",
      std::string("bad \xFF\xFE utf-8 \xE2\x82 cut"),
      " ",
      "   leading",
  };
  for (const char* f : {"gpl3_excerpt.txt", "apache2_excerpt.txt", "mpl2_excerpt.txt"})
    texts.push_back(moda::data::read_file(std::string(MODA_SOURCE_DIR) + "/tests/fixtures/tokenizer/" + f, "fixture"));
  for (const auto& t : texts) {
    INFO(t.substr(0, 60));
    std::vector<std::string_view> by_hand, by_regex;
    moda::data::gpt2_pretokenize(t, by_hand);
    re.split_isolated(t, by_regex);
    REQUIRE(by_regex == by_hand);
  }
}

TEST_CASE("regex: matches reaching past the 64k-character window are redone on a wider one", "[cpu][data][regex]") {
  const Regex cl100k = Regex::compile(patterns::kCl100k);
  // Pieces as strings: they must outlive the temporary texts below.
  auto pieces = [&](const std::string& text) {
    std::vector<std::string_view> v;
    cl100k.split_isolated(text, v);
    return std::vector<std::string>(v.begin(), v.end());
  };
  // A space run across several windows: \s+(?!\S) must see the 'b' after it.
  const std::string spaces(200000, ' ');
  auto v = pieces("a" + spaces + "b");
  REQUIRE(v.size() == 3);
  CHECK(v[1].size() == spaces.size() - 1);
  CHECK(v[2] == " b");
  v = pieces(spaces);  // at the very end the whole run is one piece
  REQUIRE(v.size() == 1);
  CHECK(v[0].size() == spaces.size());
  // A 150000-letter word is one piece; 100000 digits are 33334 pieces of at most 3.
  const std::string word(150000, 'x');
  v = pieces("(" + word + " y");
  REQUIRE(v.size() == 2);
  CHECK(v[0].size() == word.size() + 1);
  v = pieces(std::string(100000, '7'));
  CHECK(v.size() == 33334);
  CHECK(v.back() == "7");
  // Multi-byte text over many windows, cut at arbitrary characters: the pieces still tile the
  // text and agree with the hand-written GPT-2 splitter.
  std::string big;
  for (const char* f : {"gpl3_excerpt.txt", "apache2_excerpt.txt", "mpl2_excerpt.txt"})
    big += moda::data::read_file(std::string(MODA_SOURCE_DIR) + "/tests/fixtures/tokenizer/" + f, "fixture");
  big += "Ελληνικά 日本語 😀 \r\n\r\n" + std::string(70001, '\n') + "tail";
  while (big.size() < 600000) big += big;
  std::vector<std::string_view> by_hand, by_regex;
  moda::data::gpt2_pretokenize(big, by_hand);
  Regex::compile(patterns::kGpt2).split_isolated(big, by_regex);
  REQUIRE(by_regex == by_hand);
  size_t total = 0;
  for (auto p : pieces(big)) total += p.size();
  CHECK(total == big.size());
}
