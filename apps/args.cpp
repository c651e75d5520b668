#include "apps/args.h"

#include "apps/exit_codes.h"

namespace moda::app {

static std::string choices(const std::set<std::string>& known) {
  std::string out;
  for (const auto& k : known) out += (out.empty() ? "--" : ", --") + k;
  return out;
}

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& known,
           const std::set<std::string>& flags) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    // No command takes positional arguments: a stray word is a typo (`-config`, a missing `--`).
    MODA_USAGE_CHECK(a.rfind("--", 0) == 0 && a.size() > 2, "unexpected argument '", a,
                     "'; options are written --name value");
    std::string key = a.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = key.find('='); eq != std::string::npos) {
      inline_value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    MODA_USAGE_CHECK(known.count(key) || flags.count(key), "unknown option --", key,
                     "; expected one of: ", choices(known), flags.empty() ? "" : ", ", choices(flags));
    auto& vals = values_[key];
    if (flags.count(key)) {
      MODA_USAGE_CHECK(!inline_value, "option --", key, " takes no value");
      vals.push_back("1");
      continue;
    }
    if (inline_value) {
      vals.push_back(*inline_value);
      continue;
    }
    size_t before = vals.size();
    while (i + 1 < argv.size() && argv[i + 1].rfind("--", 0) != 0) vals.push_back(argv[++i]);
    MODA_USAGE_CHECK(vals.size() > before, "option --", key, " needs a value");
  }
}

std::string Args::get(const std::string& key) const {
  auto it = values_.find(key);
  MODA_USAGE_CHECK(it != values_.end(), "missing required option --", key);
  MODA_USAGE_CHECK(it->second.size() == 1, "option --", key, " takes one value, got ", it->second.size());
  return it->second[0];
}

std::string Args::get_or(const std::string& key, const std::string& fallback) const {
  return has(key) ? get(key) : fallback;
}

std::vector<std::string> Args::all(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

double Args::get_double(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  std::string v = get(key);
  try {
    size_t pos = 0;
    double d = std::stod(v, &pos);
    if (pos == v.size()) return d;
  } catch (const std::exception&) {
  }
  throw UsageError(detail::concat("option --", key, ": expected a number, got '", v, "'"));
}

long long Args::get_int(const std::string& key, long long fallback) const {
  if (!has(key)) return fallback;
  std::string v = get(key);
  try {
    size_t pos = 0;
    long long d = std::stoll(v, &pos);
    if (pos == v.size()) return d;
  } catch (const std::exception&) {
  }
  throw UsageError(detail::concat("option --", key, ": expected an integer, got '", v, "'"));
}

}  // namespace moda::app
