// The Split + ByteLevel layout (Llama 3, OLMo 2, Qwen 2), NFC normalizers and added tokens in two
// passes, built from specs here; what Hugging Face itself gives is in test_tokenizer_hf.cpp.
#include <algorithm>
#include <catch2/catch.hpp>

#include "core/error.h"
#include "data/corpus.h"
#include "data/io.h"
#include "data/split_patterns.h"
#include "data/tokenizer.h"
#include "data/unicode_normalize.h"

using namespace moda::data;
using nlohmann::json;

namespace {

std::string fixture(const std::string& name) {
  return read_file(std::string(MODA_SOURCE_DIR) + "/tests/fixtures/tokenizer/" + name, "fixture");
}

const Tokenizer& trained() {  // GPT-2 layout, 700 tokens on the GPL-3 + Apache-2.0 excerpts
  static const Tokenizer t = Tokenizer::train({fixture("gpl3_excerpt.txt"), fixture("apache2_excerpt.txt")}, 700);
  return t;
}

Tokenizer with_layout(std::optional<std::string> regex, bool nfc, bool use_regex = false) {
  TokenizerSpec spec = trained().spec();
  spec.split_regex = std::move(regex);
  spec.use_regex = use_regex;
  spec.nfc = nfc;
  return Tokenizer::from_spec(spec, "layout");
}

std::vector<std::string> real_texts() {
  std::vector<std::string> out = {fixture("mpl2_excerpt.txt"), fixture("gpl3_excerpt.txt")};
  for (auto& p : json::parse(fixture("passages.json"))) out.push_back(p.get<std::string>());
  return out;
}

std::string error_of(const json& j) {
  try {
    Tokenizer::from_json(j, "bad.json");
  } catch (const moda::Error& e) {
    return e.what();
  }
  return "(no error)";
}

json llama3_pre_tokenizer() {  // as meta-llama/Meta-Llama-3-8B's tokenizer.json has it
  return json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})");
}

}  // namespace

TEST_CASE("tokenizer layouts: Split + ByteLevel encodes each regex piece on its own", "[cpu][data]") {
  const Tokenizer whole = with_layout(std::nullopt, false);  // ByteLevel(use_regex false): one piece
  for (const char* pattern : {patterns::kCl100k, patterns::kQwen2, patterns::kO200k}) {
    const Tokenizer tok = with_layout(pattern, false);
    const Regex re = Regex::compile(pattern);
    for (const auto& text : real_texts()) {
      if (text.find("<|endoftext|>") != std::string::npos) continue;  // added tokens: below
      INFO(pattern << " on " << text.substr(0, 60));
      std::vector<std::string_view> pieces;
      re.split_isolated(text, pieces);
      std::vector<uint32_t> expected;
      for (auto p : pieces) whole.encode(p, expected);
      REQUIRE(tok.encode(text) == expected);
      CHECK(tok.decode(expected) == text);
    }
  }
}

TEST_CASE("tokenizer layouts: Split with GPT-2's regex equals the ByteLevel GPT-2 split", "[cpu][data]") {
  // The Split(GPT-2 regex) layout takes the hand-written fast path; the regex engine is checked to
  // agree with it in test_regex.cpp, and here the whole encoder is.
  const Tokenizer split_gpt2 = with_layout(patterns::kGpt2, false);
  for (const auto& text : real_texts()) REQUIRE(split_gpt2.encode(text) == trained().encode(text));
}

TEST_CASE("tokenizer layouts: NFC normalizes before splitting", "[cpu][data]") {
  const Tokenizer tok = with_layout(patterns::kCl100k, true);
  CHECK(tok.encode("Cafe\u0301 A\u030Angstro\u0308m \u1112\u1161\u11AB") ==
        tok.encode("Caf\u00E9 \u00C5ngstr\u00F6m \uD55C"));
  CHECK(tok.decode(tok.encode("re\u0301sume\u0301")) == "r\u00E9sum\u00E9");
  const Tokenizer raw = with_layout(patterns::kCl100k, false);
  CHECK(raw.encode("Cafe\u0301") != raw.encode("Caf\u00E9"));
  for (const auto& text : real_texts()) CHECK(tok.decode(tok.encode(text)) == nfc(text));
}

TEST_CASE("tokenizer layouts: added tokens, normalized ones matched after NFC", "[cpu][data]") {
  TokenizerSpec spec = trained().spec();
  spec.split_regex = patterns::kCl100k;
  spec.use_regex = false;
  spec.nfc = true;
  uint32_t next = static_cast<uint32_t>(trained().vocab_size());
  auto add = [&](const std::string& content, bool normalized) {
    AddedToken a;
    a.id = next++;
    a.content = content;
    a.normalized = normalized;
    a.special = !normalized;
    spec.added_tokens.push_back(a);
    return a.id;
  };
  const uint32_t naive = add("na\u00EFve", true);  // normalized: found in the NFC text
  const uint32_t raw_e = add("e\u0301!", false);   // not normalized: found in the raw text only
  std::vector<uint32_t> reserved;                  // Llama 3 ships 256 of these
  for (int i = 0; i < 300; ++i) reserved.push_back(add("<|reserved_special_token_" + std::to_string(i) + "|>", false));
  const Tokenizer tok = Tokenizer::from_spec(spec, "added");
  const Tokenizer plain = with_layout(patterns::kCl100k, true);

  CHECK(tok.encode("nai\u0308ve") == std::vector<uint32_t>{naive});
  CHECK(tok.encode("na\u00EFve") == std::vector<uint32_t>{naive});
  CHECK(tok.decode(std::vector<uint32_t>{naive}) == "na\u00EFve");  // its content, not byte-mapped
  auto ids = tok.encode("x e\u0301! y");
  CHECK(std::count(ids.begin(), ids.end(), raw_e) == 1);
  ids = tok.encode("x \u00E9! y");  // NFC text never holds the raw token's decomposed spelling
  CHECK(std::count(ids.begin(), ids.end(), raw_e) == 0);
  // Leftmost-longest among many tokens sharing a prefix.
  CHECK(tok.encode("<|reserved_special_token_1|><|reserved_special_token_123|>") ==
        std::vector<uint32_t>{reserved[1], reserved[123]});
  std::vector<uint32_t> expected = plain.encode("a ");
  expected.push_back(reserved[29]);
  plain.encode(" b<|reserved_special_token_", expected);
  CHECK(tok.encode("a <|reserved_special_token_29|> b<|reserved_special_token_") == expected);
}

TEST_CASE("tokenizer layouts: tokenizer.json round trip and chunked encoding", "[cpu][data]") {
  const Tokenizer tok = with_layout(patterns::kCl100k, true);
  const json j = json::parse(tok.to_json().dump());
  CHECK(j["normalizer"]["type"] == "NFC");
  CHECK(j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == patterns::kCl100k);
  const Tokenizer again = Tokenizer::from_json(j, "resaved");
  CHECK(again.spec().split_regex == tok.spec().split_regex);
  CHECK(again.spec().nfc);
  std::string text;
  for (const auto& t : real_texts()) text += t + "\n";
  const auto ids = tok.encode(text);
  CHECK(again.encode(text) == ids);
  // cl100k ends a piece after the '\n' of "x\ny": chunks cut there encode like the whole text.
  for (size_t chunk : {97, 1000}) CHECK(encode_parallel(tok, text, 2, chunk) == ids);
  // o200k's [\r\n/]* can reach over such a '\n' ("a;\n/b"): no cut is taken there.
  const Tokenizer o200k = with_layout(patterns::kO200k, false);
  CHECK_FALSE(o200k.is_split_point("a;\n/b", 3));
  CHECK(tok.is_split_point("a;\nb", 3));
}

TEST_CASE("tokenizer layouts: a real Llama 3 pre_tokenizer loads", "[cpu][data]") {
  json j = trained().to_json();
  j["pre_tokenizer"] = llama3_pre_tokenizer();
  j["normalizer"] = json::parse(R"({"type": "Sequence", "normalizers": [{"type": "NFC"}]})");
  j["post_processor"] =
      json::parse(R"({"type": "TemplateProcessing", "single": [], "pair": [], "special_tokens": {}})");
  const Tokenizer tok = Tokenizer::from_json(j, "llama3-like");
  CHECK(tok.spec().split_regex == std::string(patterns::kCl100k));
  CHECK(tok.spec().nfc);
  CHECK_FALSE(tok.spec().use_regex);
}

TEST_CASE("tokenizer layouts: unsupported layouts fail naming the field", "[cpu][data]") {
  json good = trained().to_json();
  good["pre_tokenizer"] = llama3_pre_tokenizer();
  REQUIRE_NOTHROW(Tokenizer::from_json(good, "good.json"));
  auto with = [&](auto edit) {
    json j = good;
    edit(j);
    return error_of(j);
  };
  const json::json_pointer split("/pre_tokenizer/pretokenizers/0");
  CHECK_THAT(with([&](json& j) { j[split]["behavior"] = "Removed"; }),
             Catch::Contains("bad.json: pre_tokenizer.pretokenizers[0].behavior: 'Removed' is not supported "
                             "(expected Isolated)"));
  CHECK_THAT(with([&](json& j) { j[split]["invert"] = true; }),
             Catch::Contains("pre_tokenizer.pretokenizers[0].invert: true is not supported"));
  CHECK_THAT(with([&](json& j) {
               j[split]["pattern"] = {{"String", " "}};
             }),
             Catch::Contains("pre_tokenizer.pretokenizers[0].pattern: {\"String\":\" \"} is not supported"));
  CHECK_THAT(with([&](json& j) { j[split]["pattern"]["Regex"] = "\\p{Han}+|."; }),
             Catch::Contains("pre_tokenizer.pretokenizers[0].pattern.Regex: regex '\\p{Han}+|.': at character 0"));
  CHECK_THAT(with([&](json& j) { j[split]["type"] = "Digits"; }),
             Catch::Contains("pre_tokenizer.pretokenizers[0].type: 'Digits' is not supported (expected Split)"));
  CHECK_THAT(with([&](json& j) { j[split]["extra"] = 1; }),
             Catch::Contains("pre_tokenizer.pretokenizers[0].extra: unknown option"));
  CHECK_THAT(with([](json& j) { j["pre_tokenizer"]["pretokenizers"][1]["type"] = "Metaspace"; }),
             Catch::Contains("pre_tokenizer.pretokenizers[1].type: 'Metaspace' is not supported"));
  CHECK_THAT(
      with([](json& j) { j["pre_tokenizer"]["pretokenizers"].push_back(j["pre_tokenizer"]["pretokenizers"][1]); }),
      Catch::Contains("pre_tokenizer.pretokenizers: 3 entries are not supported"));
  CHECK_THAT(with([](json& j) {
               j["normalizer"] =
                   json::parse(R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "NFKC"}]})");
             }),
             Catch::Contains("normalizer.normalizers[1].type: 'NFKC' is not supported"));
  CHECK_THAT(with([](json& j) {
               j["pre_tokenizer"] = {{"type", "Whitespace"}};
             }),
             Catch::Contains("pre_tokenizer.type: 'Whitespace' is not supported"));
}
