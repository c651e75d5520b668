#include "sweep/points.h"

#include <cctype>
#include <map>
#include <set>

#include "core/error.h"

namespace moda::sweep {

std::string value_text(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string Point::group_key() const {
  std::string key;
  for (const auto& [k, v] : values) key += (key.empty() ? "" : ",") + k + "=" + value_text(v);
  return key;
}

std::string render_run_name(const std::string& tmpl, const Point& point, bool have_seeds) {
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] != '{') {
      MODA_CHECK(tmpl[i] != '}', "manifest.run_name: '", tmpl, "' has a '}' without its '{'");
      out += tmpl[i];
      continue;
    }
    const size_t close = tmpl.find('}', i);
    MODA_CHECK(close != std::string::npos, "manifest.run_name: '", tmpl, "' has a '{' without its '}'");
    const std::string key = tmpl.substr(i + 1, close - i - 1);
    i = close;
    if (key == "seed") {
      MODA_CHECK(have_seeds, "manifest.run_name: placeholder {seed} but manifest.seeds is not given");
      out += std::to_string(*point.seed);
      continue;
    }
    bool found = false;
    std::string keys;
    for (const auto& [k, v] : point.values) {
      keys += (keys.empty() ? "" : ", ") + ("{" + k + "}");
      if (k == key) out += value_text(v), found = true;
    }
    if (have_seeds) keys += (keys.empty() ? "" : ", ") + std::string("{seed}");
    MODA_CHECK(found, "manifest.run_name: placeholder {", key,
               "} is not an axis (placeholders: ", keys.empty() ? "none" : keys, ")");
  }
  return out;
}

namespace {

bool usable_folder_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '+' || c == '='))
      return false;
  return true;
}

// One dimension of the product: a list of assignments per index.
using Dimension = std::vector<std::vector<std::pair<std::string, nlohmann::json>>>;

std::vector<Dimension> dimensions(const Manifest& m) {
  std::vector<Dimension> dims;
  for (const auto& axis : m.grid) {
    Dimension d;
    for (const auto& v : axis.values) d.push_back({{axis.key, v}});
    dims.push_back(std::move(d));
  }
  for (const auto& group : m.zip) {
    Dimension d(group.size());
    for (size_t i = 0; i < group.size(); ++i)
      for (const auto& axis : group.axes) d[i].emplace_back(axis.key, axis.values[i]);
    dims.push_back(std::move(d));
  }
  return dims;
}

}  // namespace

std::vector<Point> expand_points(const Manifest& m) {
  const std::vector<Dimension> dims = dimensions(m);
  std::vector<Point> configs(1);
  for (const auto& dim : dims) {  // the product, earlier dimensions varying slowest
    std::vector<Point> next;
    for (const auto& p : configs)
      for (const auto& assignments : dim) {
        Point q = p;
        q.values.insert(q.values.end(), assignments.begin(), assignments.end());
        next.push_back(std::move(q));
      }
    configs = std::move(next);
  }
  std::vector<Point> points;
  for (const auto& p : configs) {
    if (m.seeds.empty()) {
      points.push_back(p);
      continue;
    }
    for (uint64_t s : m.seeds) {
      Point q = p;
      q.seed = s;
      points.push_back(std::move(q));
    }
  }
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < points.size(); ++i) {
    Point& p = points[i];
    p.name = render_run_name(m.run_name, p, !m.seeds.empty());
    MODA_CHECK(usable_folder_name(p.name), "manifest.run_name: '", m.run_name, "' gives '", p.name,
               "', not usable as a folder name (letters, digits and . _ - + = only)");
    auto [it, fresh] = by_name.emplace(p.name, i);
    MODA_CHECK(fresh, "manifest.run_name: '", m.run_name, "' gives the same name '", p.name, "' to points ",
               it->second + 1, " (", points[it->second].group_key(), ") and ", i + 1, " (", p.group_key(),
               "); put every axis that varies (and {seed}) in the template");
  }
  return points;
}

}  // namespace moda::sweep
