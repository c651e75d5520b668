#include "core/json_config.h"

#include <fstream>

namespace moda {

FieldReader::FieldReader(const nlohmann::json& object, std::string section)
    : object_(object), section_(std::move(section)) {
  MODA_CHECK(object_.is_object(), section_, ": expected a JSON object, got ", object_.dump());
}

void FieldReader::finish() const {
  for (auto& [key, value] : object_.items()) {
    if (seen_.count(key)) continue;
    std::string known;
    for (const auto& s : seen_) known += (known.empty() ? "" : ", ") + s;
    MODA_FAIL(section_, ": unknown field '", key, "' (known fields: ", known, ")");
  }
}

void apply_override(nlohmann::json& config, const std::string& assignment) {
  auto eq = assignment.find('=');
  MODA_CHECK(eq != std::string::npos && eq > 0, "--set '", assignment, "': expected key=value");
  std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text);
  } catch (const std::exception&) {
    value = text;
  }
  nlohmann::json* node = &config;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    MODA_CHECK(!part.empty(), "--set '", assignment, "': empty key component");
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    MODA_CHECK(node->is_object(), "--set '", assignment, "': '", part, "' is not inside an object");
    node = &(*node)[part];
    if (node->is_null()) *node = nlohmann::json::object();
    start = dot + 1;
  }
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  MODA_CHECK(in, "cannot open config file '", path, "'");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    MODA_FAIL(path, ": not valid JSON: ", e.what());
  }
}

}  // namespace moda
