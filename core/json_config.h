#pragma once
// Reading JSON configs with errors a user can act on: every field read through FieldReader is
// type-checked and range-checked, unknown fields are rejected, and each message names the section,
// the field, the value and the rule, e.g.
//   train.micro_batch: value 0 is invalid: must be >= 1
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/error.h"

namespace moda {

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
    return object_.at(field);
  }
  void finish() const;  // throws on fields nobody read (typos)
  const std::string& section() const { return section_; }

 private:
  template <typename T>
  T convert(const std::string& field) const {
    try {
      return object_.at(field).get<T>();
    } catch (const nlohmann::json::exception&) {
      MODA_FAIL(section_, ".", field, ": value ", object_.at(field).dump(), " has the wrong type");
    }
  }
  const nlohmann::json& object_;
  std::string section_;
  std::set<std::string> seen_;
};

// Applies `key.sub=value` (value parsed as JSON when it is valid JSON, else taken as a string).
void apply_override(nlohmann::json& config, const std::string& assignment);

nlohmann::json read_json_file(const std::string& path);  // errors name the file and the parse error

}  // namespace moda
