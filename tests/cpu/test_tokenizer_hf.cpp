// Hugging Face compatibility: tokenizers trained and saved by the `tokenizers` library (0.23,
// tools/make_tokenizer_fixture.py) must encode the fixture passages to exactly the library's ids.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "data/io.h"
#include "data/tokenizer.h"

using moda::data::Tokenizer;
using nlohmann::json;

namespace {

std::string fixture(const std::string& name) {
  return std::string(MODA_SOURCE_DIR) + "/tests/fixtures/tokenizer/" + name;
}

const json& hf_cases() {
  static const json j = json::parse(moda::data::read_file(fixture("hf_cases.json"), "fixture"));
  return j;
}

void check_cases(const Tokenizer& tok, const json& expected) {
  REQUIRE(tok.vocab_size() == expected["vocab_size"].get<size_t>());
  REQUIRE(tok.eot_id() == expected["eot_id"].get<uint32_t>());
  size_t n = 0;
  for (const auto& c : expected["cases"]) {
    const std::string text = c["text"];
    INFO("case " << n++ << ": " << text.substr(0, 80));
    const auto ids = tok.encode(text);
    REQUIRE(ids == c["ids"].get<std::vector<uint32_t>>());
    for (size_t i = 0; i < ids.size(); ++i) CHECK(tok.id_to_token(ids[i]) == c["tokens"][i].get<std::string>());
    CHECK(tok.decode(ids) == c["decoded"].get<std::string>());
    // With add_prefix_space the library's decoder keeps the added ' ' too.
    if (!expected["add_prefix_space"].get<bool>()) CHECK(tok.decode(ids) == text);
  }
}

}  // namespace

TEST_CASE("data: tokenizer encodes like Hugging Face tokenizers", "[cpu][data]") {
  for (const std::string name : {"hf_tokenizer.json", "hf_tokenizer_prefix.json"}) {
    INFO(name);
    const Tokenizer tok = Tokenizer::load(fixture(name));
    check_cases(tok, hf_cases()["tokenizers"][name]);
  }
}

TEST_CASE("data: tokenizer reads merges as pairs and as strings, and saves loadably", "[cpu][data]") {
  const std::string name = "hf_tokenizer.json";
  json j = json::parse(moda::data::read_file(fixture(name), "fixture"));
  REQUIRE(j["model"]["merges"][0].is_array());  // tokenizers 0.23 writes [a, b] pairs
  for (auto& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  const Tokenizer from_strings = Tokenizer::from_json(j, "merges-as-strings");
  check_cases(from_strings, hf_cases()["tokenizers"][name]);

  // Our own file (merges as "a b") reloads to the same encoder.
  const Tokenizer again = Tokenizer::from_json(json::parse(from_strings.to_json().dump()), "resaved");
  check_cases(again, hf_cases()["tokenizers"][name]);
}
