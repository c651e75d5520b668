#pragma once
// Reading JSON with errors a user can act on.
//
// Every JSON input (configs, --set values, tokenizer.json, checkpoint manifests and state files,
// safetensors headers) is parsed by parse_json_text / parse_json_file: nesting deeper than
// kMaxJsonDepth and files larger than a limit are refused before parsing (a 100000-deep array
// once crashed the process), and parse errors name the origin in the project's words.
//
// Every field read through FieldReader is type-checked and range-checked, unknown fields are
// rejected, and each message names the section, the field, the value and the rule, e.g.
//   train.micro_batch: value 0 is invalid: must be >= 1
//   train.steps: value 2.7 has the wrong type: expected an integer
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace moda {

// Deepest nesting of arrays/objects accepted in any JSON input (configs need about 5 levels).
constexpr int kMaxJsonDepth = 64;
// Largest JSON file read (tokenizer.json files of large vocabularies are ~20 MB).
constexpr uint64_t kMaxJsonFileBytes = uint64_t(1) << 30;

// Parses `text`; `origin` names it in errors ("config file 'x.json'", "--set 'a=b'").
nlohmann::json parse_json_text(const std::string& text, const std::string& origin);
// Reads and parses a file; `what` says what it is for ("config", "checkpoint state").
nlohmann::json parse_json_file(const std::string& path, const std::string& what);
// The deepest nesting level of arrays/objects in `text` (strings are skipped); stops counting
// at `stop_at` so a huge input costs no more than needed.
int json_nesting_depth(const std::string& text, int stop_at = kMaxJsonDepth + 1);
// nlohmann's exception text without its "[json.exception.parse_error.101] " prefix.
std::string json_error_text(const std::exception& e);

class FieldReader {
 public:
  FieldReader(const nlohmann::json& object, std::string section);

  template <typename T>
  T get(const std::string& field, const T& fallback) {
    seen_.insert(field);
    if (!object_.contains(field)) return fallback;
    return convert<T>(field);
  }
  template <typename T>
  T require(const std::string& field) {
    seen_.insert(field);
    MODA_CHECK(object_.contains(field), section_, ": missing required field '", field, "'");
    return convert<T>(field);
  }
  // Throws naming the field when `ok` is false.
  template <typename V>
  void check(bool ok, const std::string& field, const V& value, const std::string& rule) const {
    MODA_CHECK(ok, section_, ".", field, ": value ", value, " is invalid: ", rule);
  }
  bool has(const std::string& field) const { return object_.contains(field); }
  const nlohmann::json& raw(const std::string& field) {
    seen_.insert(field);
    MODA_CHECK(object_.contains(field), section_, ": missing required field '", field, "'");
    return object_.at(field);
  }
  void finish() const;  // throws on fields nobody read (typos)
  const std::string& section() const { return section_; }

 private:
  [[noreturn]] void wrong_type(const std::string& field, const char* expected) const;

  template <typename T>
  T convert(const std::string& field) const {
    const nlohmann::json& v = object_.at(field);
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) wrong_type(field, "true or false");
      return v.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      // nlohmann would truncate 2.7 to 2, wrap -1 into an unsigned and turn true into 1.
      if (!v.is_number_integer()) wrong_type(field, "an integer");
      if (v.is_number_unsigned()) {
        if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max()))
          wrong_type(field, "an integer in the range of the field");
      } else {
        int64_t x = v.get<int64_t>();
        if constexpr (std::is_unsigned_v<T>) {
          if (x < 0) wrong_type(field, "a non-negative integer");
        } else if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
                   x > static_cast<int64_t>(std::numeric_limits<T>::max())) {
          wrong_type(field, "an integer in the range of the field");
        }
      }
      return v.get<T>();
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!v.is_number()) wrong_type(field, "a number");
      return v.get<T>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) wrong_type(field, "a string");
      return v.get<std::string>();
    } else {
      try {
        return v.get<T>();
      } catch (const nlohmann::json::exception&) {
        wrong_type(field, "another type");
      }
    }
  }
  const nlohmann::json& object_;
  std::string section_;
  std::set<std::string> seen_;
};

// Applies `key.sub=value` (value parsed as JSON when it is valid JSON, else taken as a string).
// Errors name the assignment and the key component at fault.
void apply_override(nlohmann::json& config, const std::string& assignment);

// The config reader: parse_json_file(path, "config").
nlohmann::json read_json_file(const std::string& path);

// A short, bounded rendering of a value for error messages (a huge value is cut, not dumped).
std::string json_excerpt(const nlohmann::json& value, size_t max_chars = 80);

}  // namespace moda
