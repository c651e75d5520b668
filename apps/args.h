#pragma once
// Minimal option parser: `--key value`, `--key v1 v2 ...` (values until the next --option),
// `--flag`, and `--key=value`. Unknown options, stray words and malformed values throw UsageError
// (exit status 2) naming the option and, for unknown ones, the choices.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace moda::app {

class Args {
 public:
  // `known` lists every accepted option name without dashes; `flags` those that take no value.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& known,
       const std::set<std::string>& flags = {});

  bool has(const std::string& key) const { return values_.count(key) > 0; }
  std::string get(const std::string& key) const;  // required, single value
  std::string get_or(const std::string& key, const std::string& fallback) const;
  std::vector<std::string> all(const std::string& key) const;  // every value given
  double get_double(const std::string& key, double fallback) const;
  long long get_int(const std::string& key, long long fallback) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace moda::app
