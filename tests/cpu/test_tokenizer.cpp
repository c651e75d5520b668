// Tokenizer: GPT-2 pre-tokenizer, byte-level map, training determinism, round trips on real text,
// added tokens, tokenizer.json errors, chunked parallel encoding.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "data/byte_level.h"
#include "data/corpus.h"
#include "data/io.h"
#include "data/pretokenize.h"
#include "data/tokenizer.h"

using namespace moda::data;
using nlohmann::json;

namespace {

std::string fixture(const std::string& name) {
  return read_file(std::string(MODA_SOURCE_DIR) + "/tests/fixtures/tokenizer/" + name, "fixture");
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string_view> pieces;
  gpt2_pretokenize(text, pieces);
  return {pieces.begin(), pieces.end()};
}

const Tokenizer& trained() {  // 700 tokens on the GPL-3 + Apache-2.0 excerpts
  static const Tokenizer t = Tokenizer::train({fixture("gpl3_excerpt.txt"), fixture("apache2_excerpt.txt")}, 700);
  return t;
}

std::vector<std::string> real_texts() {
  std::vector<std::string> out = {fixture("mpl2_excerpt.txt"), fixture("gpl3_excerpt.txt")};
  for (auto& p : json::parse(fixture("passages.json"))) out.push_back(p.get<std::string>());
  // Debian always ships these; use them when present for more (unseen) real text.
  for (const char* f : {"/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0"})
    if (std::filesystem::exists(f)) out.push_back(read_file(f, "license"));
  return out;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const moda::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("data: GPT-2 pre-tokenizer splits like the regex", "[cpu][data]") {
  using V = std::vector<std::string>;
  CHECK(split("Hello world") == V{"Hello", " world"});
  CHECK(split("I'm sure they're done, don't") == V{"I", "'m", " sure", " they", "'re", " done", ",", " don", "'t"});
  CHECK(split("'s'S 'll'LL") == V{"'s", "'", "S", " '", "ll", "'", "LL"});
  CHECK(split("a  b") == V{"a", " ", " b"});
  CHECK(split("x\n\ny") == V{"x", "\n", "\n", "y"});
  CHECK(split("end   ") == V{"end", "   "});
  CHECK(split("  hi") == V{" ", " hi"});
  CHECK(split("3.14 abc123 42") == V{"3", ".", "14", " abc", "123", " 42"});
  CHECK(split("!!! ?x") == V{"!!!", " ?", "x"});
  CHECK(split("héllo wörld ½²") == V{"héllo", " wörld", " ½²"});
  CHECK(split("日本語 テキスト") == V{"日本語", " テキスト"});
  CHECK(split("a\u00a0b") == V{"a", "\u00a0", "b"});        // NBSP is \s but not the ' ' prefix
  CHECK(split("a \u3000b") == V{"a", " ", "\u3000", "b"});  // U+3000 ideographic space
  CHECK(split("hi 😀!") == V{"hi", " 😀!"});
  CHECK(split("\xff\xfe ab\xc3") == V{"\xff\xfe", " ab", "\xc3"});  // invalid UTF-8: "other" bytes
  CHECK(split("").empty());
}

TEST_CASE("data: byte-level map is GPT-2's bytes_to_unicode", "[cpu][data]") {
  CHECK(byte_to_unicode(' ') == "Ġ");
  CHECK(byte_to_unicode('\n') == "Ċ");
  CHECK(byte_to_unicode('a') == "a");
  CHECK(byte_to_unicode(0) == "Ā");
  CHECK(byte_to_unicode(0xAD) == "Ń");  // the soft hyphen is not printable: mapped
  std::string all;
  for (int b = 0; b < 256; ++b) all += char(b);
  auto spelled = byte_level_encode(all);
  CHECK(byte_level_decode(spelled) == all);
  CHECK_FALSE(byte_level_decode("a b").has_value());  // ' ' itself is not a mapped character
}

TEST_CASE("data: trained tokenizer round-trips real text exactly", "[cpu][data]") {
  const Tokenizer& tok = trained();
  REQUIRE(tok.vocab_size() == 700);
  REQUIRE(tok.eot_id() == 699);
  for (const auto& text : real_texts()) {
    auto ids = tok.encode(text);
    REQUIRE(tok.decode(ids) == text);
    for (auto id : ids) REQUIRE(id < tok.vocab_size());
  }
  const std::string gpl = fixture("gpl3_excerpt.txt");
  CHECK(tok.encode(gpl).size() * 5 < gpl.size() * 2);  // it learned the text: > 2.5 bytes/token
  // The end-of-text token in text is one token; random bytes (invalid UTF-8) round-trip too.
  auto ids = tok.encode("one<|endoftext|>two");
  CHECK(std::count(ids.begin(), ids.end(), tok.eot_id()) == 1);
  std::mt19937 rng(7);
  std::string noise(5000, 0);
  for (auto& c : noise) c = char(rng() & 0xFF);
  CHECK(tok.decode(tok.encode(noise)) == noise);
}

TEST_CASE("data: tokenizer training is deterministic", "[cpu][data]") {
  const std::string a = fixture("gpl3_excerpt.txt"), b = fixture("apache2_excerpt.txt");
  const auto t1 = Tokenizer::train({a, b}, 700).to_json().dump();
  const auto t2 = Tokenizer::train({a, b}, 700).to_json().dump();
  const auto t3 = Tokenizer::train({b, a}, 700).to_json().dump();  // word counts ignore order
  CHECK(t1 == t2);
  CHECK(t1 == t3);
  // Save -> load gives the same encoder, and a second save gives the same bytes.
  auto dir = std::filesystem::temp_directory_path() / ("moda_tok_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  trained().save((dir / "t.json").string());
  Tokenizer back = Tokenizer::load((dir / "t.json").string());
  const std::string mpl = fixture("mpl2_excerpt.txt");
  CHECK(back.encode(mpl) == trained().encode(mpl));
  CHECK(back.to_json().dump() == trained().to_json().dump());
  std::filesystem::remove_all(dir);
}

TEST_CASE("data: training stops early and refuses bad sizes", "[cpu][data]") {
  Tokenizer small = Tokenizer::train({"abab abab"}, 1000);  // few pairs repeat
  CHECK(small.vocab_size() < 1000);
  CHECK(small.decode(small.encode("abab abab")) == "abab abab");
  CHECK_THROWS_WITH(Tokenizer::train({"abc"}, 200), Catch::Contains("--vocab-size 200 is too small"));
  CHECK_THROWS_WITH(Tokenizer::train({""}, 300), Catch::Contains("empty"));
}

TEST_CASE("data: added tokens with lstrip, rstrip and single_word", "[cpu][data]") {
  TokenizerSpec spec = trained().spec();
  AddedToken mask;
  mask.id = 700, mask.content = "<mask>", mask.lstrip = true;
  AddedToken tight;
  tight.id = 701, tight.content = "[X]", tight.rstrip = true;
  AddedToken word;
  word.id = 702, word.content = "cat", word.single_word = true;
  spec.added_tokens.insert(spec.added_tokens.end(), {mask, tight, word});
  Tokenizer tok = Tokenizer::from_spec(spec);
  auto cat = [](std::vector<uint32_t> a, const std::vector<uint32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const Tokenizer& base = trained();
  CHECK(tok.encode("a  <mask> b") == cat(cat(base.encode("a"), {700}), base.encode(" b")));
  CHECK(tok.encode("a [X]  b") == cat(cat(base.encode("a "), {701}), base.encode("b")));
  CHECK(tok.encode("cat concatenate") == cat({702}, base.encode(" concatenate")));
}

TEST_CASE("data: bad tokenizer files give errors naming the file and field", "[cpu][data]") {
  json good = trained().to_json();
  auto with = [&](auto edit) {
    json j = good;
    edit(j);
    return error_of([&] { Tokenizer::from_json(j, "bad.json"); });
  };
  CHECK_THAT(error_of([] { Tokenizer::load("/nonexistent/tok.json"); }), Catch::Contains("/nonexistent/tok.json"));
  CHECK_THAT(with([](json& j) { j.erase("model"); }), Catch::Contains("bad.json: model"));
  CHECK_THAT(with([](json& j) { j["model"]["type"] = "WordPiece"; }), Catch::Contains("model.type"));
  CHECK_THAT(with([](json& j) { j["model"]["merges"][3] = "nospace"; }), Catch::Contains("model.merges[3]"));
  CHECK_THAT(with([](json& j) { j["model"]["merges"][5] = "Ġ zzzz"; }),
             Catch::Contains("'zzzz' is not in model.vocab"));
  CHECK_THAT(with([](json& j) { j["model"]["vocab"]["Ġ"] = -4; }), Catch::Contains("model.vocab[\"Ġ\"]"));
  CHECK_THAT(with([](json& j) { j["model"]["vocab"]["Ġ"] = 5; }), Catch::Contains("id 5 is given to both"));
  CHECK_THAT(with([](json& j) {
               j["normalizer"] = {{"type", "Lowercase"}};
             }),
             Catch::Contains("normalizer.type: 'Lowercase' is not supported"));
  CHECK_THAT(with([](json& j) {
               j["pre_tokenizer"] = {{"type", "Whitespace"}};
             }),
             Catch::Contains("pre_tokenizer.type"));
  CHECK_THAT(with([](json& j) { j["model"]["byte_fallback"] = true; }), Catch::Contains("model.byte_fallback"));
  CHECK_THAT(with([](json& j) { j["added_tokens"][0].erase("content"); }), Catch::Contains("added_tokens[0].content"));
  CHECK_THAT(with([](json& j) { j["model"]["dropout"] = 0.1; }), Catch::Contains("model.dropout"));

  auto dir = std::filesystem::temp_directory_path() / ("moda_tokbad_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "broken.json").string();
  std::ofstream(path) << "{\"model\": {\"vocab\": ";
  CHECK_THAT(error_of([&] { Tokenizer::load(path); }), Catch::Contains(path) && Catch::Contains("not valid JSON"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("data: chunked parallel encoding equals whole-text encoding", "[cpu][data]") {
  std::string text;
  for (const auto& t : real_texts()) text += t + "\n";
  const Tokenizer& tok = trained();
  const auto whole = tok.encode(text);
  for (size_t chunk : {97, 1000, 5000})
    for (unsigned threads : {1u, 2u, 3u}) CHECK(encode_parallel(tok, text, threads, chunk) == whole);
  // With add_prefix_space no cut is safe: the text stays one chunk.
  TokenizerSpec spec = tok.spec();
  spec.add_prefix_space = true;
  Tokenizer prefixed = Tokenizer::from_spec(spec);
  CHECK(encode_parallel(prefixed, text, 3, 500) == prefixed.encode(text));
}
