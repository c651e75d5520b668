// Reading and writing the Hugging Face tokenizer.json layout (the byte-level BPE subset: GPT-2
// and the Split + ByteLevel layout of Llama 3, OLMo 2, Qwen 2; docs/data-formats.md).
#include <limits>

#include "core/error.h"
#include "core/json_config.h"
#include "data/io.h"
#include "data/regex.h"
#include "data/tokenizer.h"

namespace moda::data {

using nlohmann::json;

namespace {

// obj["type"] when it is a string, else "" (json::value() would throw on a non-string type).
std::string type_of(const json& obj) {
  if (!obj.is_object() || !obj.contains("type") || !obj["type"].is_string()) return "";
  return obj["type"].get<std::string>();
}

struct Reader {
  const std::string& source;
  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    MODA_FAIL("tokenizer ", source, ": ", field, ": ", what);
  }
  bool get_bool(const json& obj, const char* key, const std::string& field, bool fallback) const {
    if (!obj.contains(key) || obj[key].is_null()) return fallback;
    if (!obj[key].is_boolean()) fail(field + "." + key, "expected true or false, got " + obj[key].dump());
    return obj[key].get<bool>();
  }
  uint32_t get_id(const json& v, const std::string& field) const {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        v.get<int64_t>() >= int64_t(std::numeric_limits<uint32_t>::max()))
      fail(field, "expected a token id (integer >= 0), got " + v.dump());
    return static_cast<uint32_t>(v.get<int64_t>());
  }
  // Fails on any key of `obj` outside `known`: an option not understood must not be ignored.
  void only_keys(const json& obj, std::initializer_list<const char*> known, const std::string& field) const {
    for (auto& [key, value] : obj.items()) {
      bool ok = false;
      for (const char* k : known) ok = ok || key == k;
      if (!ok) fail(field + "." + key, "unknown option (supported: " + join(known) + ")");
    }
  }
  static std::string join(std::initializer_list<const char*> names) {
    std::string out;
    for (const char* n : names) out += (out.empty() ? "" : ", ") + std::string(n);
    return out;
  }
  // A value for an error message: strings in single quotes, anything else as (short) JSON.
  static std::string shown(const json& v) {
    return v.is_string() ? quoted(v.get<std::string>()) : v.dump().substr(0, 120);
  }
  // Built by appending: g++ 12 warns (-Wrestrict, falsely) on "'" + s + "'".
  static std::string quoted(const std::string& s) {
    std::string out;
    out.reserve(s.size() + 2);
    out.append(1, '\'').append(s).append(1, '\'');
    return out;
  }

  // normalizer: null, NFC, or a Sequence of those (nested), into spec.nfc.
  void normalizer(const json& n, const std::string& field, TokenizerSpec& spec) const {
    if (n.is_null()) return;
    const std::string type = type_of(n);
    if (type == "Sequence") {
      if (!n.contains("normalizers") || !n["normalizers"].is_array())
        fail(field + ".normalizers", "missing or not an array");
      for (size_t i = 0; i < n["normalizers"].size(); ++i)
        normalizer(n["normalizers"][i], field + ".normalizers[" + std::to_string(i) + "]", spec);
      return;
    }
    if (type == "NFC") {
      only_keys(n, {"type"}, field);
      spec.nfc = true;
      return;
    }
    fail(field + ".type",
         (type.empty() ? shown(n) : quoted(type)) + " is not supported (only null, NFC or a Sequence of them)");
  }

  // pre_tokenizer: ByteLevel; a Sequence of one ByteLevel; or Sequence[Split(Regex, Isolated),
  // ByteLevel] as Llama 3, OLMo 2 and Qwen 2 ship.
  void pre_tokenizer(const json& pre, TokenizerSpec& spec) const {
    const std::string field = "pre_tokenizer";
    if (!pre.is_object()) fail(field, "expected a ByteLevel pre-tokenizer or a Sequence, got " + shown(pre));
    const std::string type = type_of(pre);
    if (type == "ByteLevel") return byte_level(pre, field, spec);
    if (type != "Sequence")
      fail(field + ".type", "'" + type + "' is not supported (only ByteLevel, or Sequence[Split, ByteLevel])");
    only_keys(pre, {"type", "pretokenizers"}, field);
    if (!pre.contains("pretokenizers") || !pre["pretokenizers"].is_array())
      fail(field + ".pretokenizers", "missing or not an array");
    const json& list = pre["pretokenizers"];
    auto item = [&](size_t i) { return field + ".pretokenizers[" + std::to_string(i) + "]"; };
    if (list.empty() || list.size() > 2)
      fail(field + ".pretokenizers",
           std::to_string(list.size()) + " entries are not supported (only [ByteLevel] or [Split, ByteLevel])");
    if (list.size() == 2) {
      if (type_of(list[0]) != "Split")
        fail(item(0) + ".type", "'" + type_of(list[0]) + "' is not supported (expected Split)");
      split(list[0], item(0), spec);
    }
    const json& last = list[list.size() - 1];
    if (type_of(last) != "ByteLevel")
      fail(item(list.size() - 1) + ".type",
           "'" + type_of(last) + "' is not supported (expected ByteLevel: the vocabulary is byte-level)");
    byte_level(last, item(list.size() - 1), spec);
  }

  void byte_level(const json& bl, const std::string& field, TokenizerSpec& spec) const {
    // trim_offsets only changes offsets, which encode() does not return.
    only_keys(bl, {"type", "add_prefix_space", "trim_offsets", "use_regex"}, field);
    spec.add_prefix_space = get_bool(bl, "add_prefix_space", field, false);
    spec.use_regex = get_bool(bl, "use_regex", field, true);
  }

  void split(const json& sp, const std::string& field, TokenizerSpec& spec) const {
    only_keys(sp, {"type", "pattern", "behavior", "invert"}, field);
    if (!sp.contains("pattern") || !sp["pattern"].is_object() || sp["pattern"].size() != 1)
      fail(field + ".pattern", "expected {\"Regex\": \"...\"}");
    const json& pattern = sp["pattern"];
    if (!pattern.contains("Regex"))
      fail(field + ".pattern", shown(pattern) + " is not supported (only {\"Regex\": ...})");
    if (!pattern["Regex"].is_string()) fail(field + ".pattern.Regex", "expected a string");
    const std::string behavior =
        sp.contains("behavior") && sp["behavior"].is_string() ? sp["behavior"].get<std::string>() : "";
    if (behavior != "Isolated")
      fail(field + ".behavior",
           (sp.contains("behavior") ? shown(sp["behavior"]) : "missing") + " is not supported (expected Isolated)");
    if (get_bool(sp, "invert", field, false)) fail(field + ".invert", "true is not supported");
    spec.split_regex = pattern["Regex"].get<std::string>();
    try {
      Regex::compile(*spec.split_regex);
    } catch (const Error& e) {
      fail(field + ".pattern.Regex", e.what());
    }
  }
};

}  // namespace

Tokenizer Tokenizer::load(const std::string& path) {
  // Depth- and size-limited, errors name the file (core/json_config.h).
  json j = parse_json_file(path, "tokenizer");
  try {
    return from_json(j, path);
  } catch (const json::exception& e) {  // a shape from_json does not check field by field
    MODA_FAIL("tokenizer ", path, ": unexpected JSON structure: ", json_error_text(e));
  }
}

Tokenizer Tokenizer::from_json(const json& j, const std::string& source) {
  Reader r{source};
  if (!j.is_object()) r.fail("(top level)", "expected a JSON object");
  TokenizerSpec spec;

  if (!j.contains("model") || !j["model"].is_object()) r.fail("model", "missing or not an object");
  const json& m = j["model"];
  if (m.contains("type") && m["type"] != "BPE")
    r.fail("model.type", m["type"].dump() + " is not supported (only \"BPE\")");
  if (!m.contains("vocab") || !m["vocab"].is_object()) r.fail("model.vocab", "missing or not an object");
  for (auto& [tok, id] : m["vocab"].items()) spec.vocab.emplace_back(tok, r.get_id(id, "model.vocab[\"" + tok + "\"]"));
  if (m.contains("merges") && !m["merges"].is_null()) {
    if (!m["merges"].is_array()) r.fail("model.merges", "expected an array");
    const json& merges = m["merges"];
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& e = merges[i];
      const std::string field = "model.merges[" + std::to_string(i) + "]";
      if (e.is_string()) {  // "a b" (tokenizers < 0.20, GPT-2's file)
        std::string s = e.get<std::string>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() || s.find(' ', sp + 1) != std::string::npos)
          r.fail(field, "expected \"left right\" (two tokens, one space), got " + e.dump());
        spec.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        spec.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());  // [a, b]
      } else {
        r.fail(field, "expected \"left right\" or [\"left\", \"right\"], got " + e.dump());
      }
    }
  }
  if (m.contains("dropout") && !m["dropout"].is_null() &&
      !(m["dropout"].is_number() && m["dropout"].get<double>() == 0.0))
    r.fail("model.dropout", "BPE dropout is not supported (encoding must be deterministic)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(key) && !m[key].is_null() && m[key] != "")
      r.fail(std::string("model.") + key, m[key].dump() + " is not supported (only null or \"\")");
  if (r.get_bool(m, "byte_fallback", "model", false))
    r.fail("model.byte_fallback", "true is not supported (byte-level BPE needs no fallback)");
  if (m.contains("unk_token") && !m["unk_token"].is_null()) {
    if (!m["unk_token"].is_string()) r.fail("model.unk_token", "expected a string or null");
    spec.unk_token = m["unk_token"].get<std::string>();
  }
  spec.fuse_unk = r.get_bool(m, "fuse_unk", "model", false);
  spec.ignore_merges = r.get_bool(m, "ignore_merges", "model", false);

  if (j.contains("normalizer")) r.normalizer(j["normalizer"], "normalizer", spec);
  if (!j.contains("pre_tokenizer")) r.fail("pre_tokenizer", "missing (a ByteLevel one is needed)");
  r.pre_tokenizer(j["pre_tokenizer"], spec);
  if (j.contains("decoder") && !j["decoder"].is_null() &&
      !(j["decoder"].is_object() && type_of(j["decoder"]) == "ByteLevel"))
    r.fail("decoder", j["decoder"].dump().substr(0, 80) + " is not supported (only ByteLevel)");
  // post_processor (ByteLevel, TemplateProcessing adding <|begin_of_text|>, ...), truncation and
  // padding only matter for add_special_tokens / batching in the Hugging Face API; encode() here
  // equals encode(text, add_special_tokens=False), so they are accepted and ignored.

  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) r.fail("added_tokens", "expected an array");
    const json& at = j["added_tokens"];
    for (size_t i = 0; i < at.size(); ++i) {
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      const json& e = at[i];
      if (!e.is_object()) r.fail(field, "expected an object");
      if (!e.contains("id")) r.fail(field + ".id", "missing");
      if (!e.contains("content") || !e["content"].is_string()) r.fail(field + ".content", "missing or not a string");
      AddedToken a;
      a.id = r.get_id(e["id"], field + ".id");
      a.content = e["content"].get<std::string>();
      a.single_word = r.get_bool(e, "single_word", field, false);
      a.lstrip = r.get_bool(e, "lstrip", field, false);
      a.rstrip = r.get_bool(e, "rstrip", field, false);
      a.normalized = r.get_bool(e, "normalized", field, false);
      a.special = r.get_bool(e, "special", field, false);
      spec.added_tokens.push_back(std::move(a));
    }
  }
  return from_spec(std::move(spec), source);
}

nlohmann::ordered_json Tokenizer::to_json() const {
  using oj = nlohmann::ordered_json;
  auto byte_level = [&](bool prefix) {
    return oj{
        {"type", "ByteLevel"}, {"add_prefix_space", prefix}, {"trim_offsets", true}, {"use_regex", spec_.use_regex}};
  };
  oj j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = oj::array();
  for (const auto& a : spec_.added_tokens)
    j["added_tokens"].push_back(oj{{"id", a.id},
                                   {"content", a.content},
                                   {"single_word", a.single_word},
                                   {"lstrip", a.lstrip},
                                   {"rstrip", a.rstrip},
                                   {"normalized", a.normalized},
                                   {"special", a.special}});
  j["normalizer"] = spec_.nfc ? oj{{"type", "NFC"}} : oj(nullptr);
  if (spec_.split_regex) {
    oj split{
        {"type", "Split"}, {"pattern", {{"Regex", *spec_.split_regex}}}, {"behavior", "Isolated"}, {"invert", false}};
    j["pre_tokenizer"] =
        oj{{"type", "Sequence"}, {"pretokenizers", oj::array({split, byte_level(spec_.add_prefix_space)})}};
  } else {
    j["pre_tokenizer"] = byte_level(spec_.add_prefix_space);
  }
  j["post_processor"] =
      oj{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  j["decoder"] = byte_level(true);
  oj m;
  m["type"] = "BPE";
  m["dropout"] = nullptr;
  m["unk_token"] = spec_.unk_token ? oj(*spec_.unk_token) : oj(nullptr);
  m["continuing_subword_prefix"] = nullptr;
  m["end_of_word_suffix"] = nullptr;
  m["fuse_unk"] = spec_.fuse_unk;
  m["byte_fallback"] = false;
  m["ignore_merges"] = spec_.ignore_merges;
  auto vocab = spec_.vocab;
  std::stable_sort(vocab.begin(), vocab.end(), [](auto& x, auto& y) { return x.second < y.second; });
  oj v = oj::object();
  for (auto& [tok, id] : vocab) v[tok] = id;
  m["vocab"] = std::move(v);
  // "a b" strings: readable by every tokenizers version (byte-level tokens never hold a space).
  oj merges = oj::array();
  for (auto& [a, b] : spec_.merges) merges.push_back(a + " " + b);
  m["merges"] = std::move(merges);
  j["model"] = std::move(m);
  return j;
}

void Tokenizer::save(const std::string& path) const {
  for (auto& [a, b] : spec_.merges)
    MODA_CHECK(a.find(' ') == std::string::npos && b.find(' ') == std::string::npos, "tokenizer save '", path,
               "': merge ('", a, "', '", b, "') holds a space and cannot be written as \"a b\"");
  write_file_atomically(path, to_json().dump(2) + "\n");
}

}  // namespace moda::data
