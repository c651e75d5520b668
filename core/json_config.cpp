#include "core/json_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace moda {

int json_nesting_depth(const std::string& text, int stop_at) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest >= stop_at) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::string json_error_text(const std::exception& e) {
  std::string s = e.what();
  if (s.rfind("[json.exception.", 0) == 0) {
    size_t close = s.find("] ");
    if (close != std::string::npos) s = s.substr(close + 2);
  }
  return s;
}

nlohmann::json parse_json_text(const std::string& text, const std::string& origin) {
  // nlohmann parses deep input iteratively, but recursive code downstream (dump() in messages,
  // comparisons, copies) would overflow the stack; refuse it before anything is built.
  int depth = json_nesting_depth(text);
  MODA_CHECK(depth <= kMaxJsonDepth, origin, ": JSON nested deeper than the limit of ", kMaxJsonDepth,
             " levels of arrays/objects");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    MODA_FAIL(origin, ": not valid JSON (at byte ", e.byte, "): ", json_error_text(e));
  } catch (const nlohmann::json::exception& e) {
    MODA_FAIL(origin, ": not valid JSON: ", json_error_text(e));
  }
}

nlohmann::json parse_json_file(const std::string& path, const std::string& what) {
  struct stat st {};
  MODA_CHECK(::stat(path.c_str(), &st) == 0, "cannot open ", what, " file '", path, "': ", std::strerror(errno));
  MODA_CHECK(!S_ISDIR(st.st_mode), what, " file '", path, "' is a folder, not a JSON file");
  MODA_CHECK(static_cast<uint64_t>(st.st_size) <= kMaxJsonFileBytes, what, " file '", path, "' has ", st.st_size,
             " bytes, more than the limit of ", kMaxJsonFileBytes, " for a JSON file");
  std::ifstream in(path, std::ios::binary);
  MODA_CHECK(in, "cannot open ", what, " file '", path, "': ", std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  MODA_CHECK(!in.bad(), "error reading ", what, " file '", path, "'");
  return parse_json_text(std::move(buf).str(), what + " file '" + path + "'");
}

nlohmann::json read_json_file(const std::string& path) { return parse_json_file(path, "config"); }

std::string json_excerpt(const nlohmann::json& value, size_t max_chars) {
  std::string s = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > max_chars) s = s.substr(0, max_chars) + "...";
  return s;
}

FieldReader::FieldReader(const nlohmann::json& object, std::string section)
    : object_(object), section_(std::move(section)) {
  MODA_CHECK(object_.is_object(), section_, ": expected a JSON object, got ", json_excerpt(object_));
}

void FieldReader::wrong_type(const std::string& field, const char* expected) const {
  MODA_FAIL(section_, ".", field, ": value ", json_excerpt(object_.at(field)), " has the wrong type: expected ",
            expected);
}

void FieldReader::finish() const {
  for (auto& [key, value] : object_.items()) {
    if (seen_.count(key)) continue;
    std::string known;
    for (const auto& s : seen_) known += (known.empty() ? "" : ", ") + s;
    MODA_FAIL(section_, ": unknown field '", key, "' (known fields: ", known, ")");
  }
}

static const char* kind_of(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::array: return "a list";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::null: return "null";
    default: return "a number";
  }
}

void apply_override(nlohmann::json& config, const std::string& assignment) {
  auto eq = assignment.find('=');
  MODA_CHECK(eq != std::string::npos && eq > 0, "--set '", assignment.substr(0, 100), "': expected key=value");
  std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  // A huge value is not repeated in full in every message.
  const std::string origin =
      "--set '" +
      (assignment.size() > 100 ? assignment.substr(0, 80) + "...(" + std::to_string(assignment.size()) + " characters)"
                               : assignment) +
      "'";
  // Too deep is an error, not "a string that happens to look like JSON".
  MODA_CHECK(json_nesting_depth(text) <= kMaxJsonDepth, origin, ": value nested deeper than the limit of ",
             kMaxJsonDepth, " levels of arrays/objects");
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    value = text;
  }
  nlohmann::json* node = &config;
  size_t start = 0;
  std::string path;  // the key components walked so far, for messages
  while (true) {
    size_t dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    MODA_CHECK(!part.empty(), origin, ": empty key component");
    // Writing a field into a string or list would throw nlohmann's type_error.305.
    MODA_CHECK(node->is_object(), origin, ": '", path, "' is ", kind_of(*node), ", not a section with fields, so '",
               part, "' cannot be set inside it");
    path += (path.empty() ? "" : ".") + part;
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    node = &(*node)[part];
    if (node->is_null()) *node = nlohmann::json::object();
    start = dot + 1;
  }
}

}  // namespace moda
