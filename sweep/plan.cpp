#include "sweep/plan.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"

namespace moda::sweep {

PointStatus Plan::status(size_t i) const {
  const TrainConfig& c = configs[i].config;
  return inspect_point(run_dir(i), c.train.steps, !c.data.val.empty(), &c.resolved);
}

std::vector<PointStatus> Plan::statuses() const {
  std::vector<PointStatus> out;
  for (size_t i = 0; i < points.size(); ++i) out.push_back(status(i));
  return out;
}

Plan make_plan(Manifest m, DataFiles data) {
  Plan plan;
  check_manifest_against_config(m);  // first: a bad key or value is named by its manifest field
  plan.points = expand_points(m);
  for (const auto& p : plan.points) plan.configs.push_back(resolve_point(m, p, data));
  plan.manifest = std::move(m);
  return plan;
}

Plan restrict_points(Plan plan, const std::vector<std::string>& only) {
  if (only.empty()) return plan;
  const Manifest& m = plan.manifest;
  std::vector<std::string> keys = m.axis_keys();
  if (!m.seeds.empty()) keys.push_back("seed");
  auto joined = [](const std::vector<std::string>& words) {
    std::string s;
    for (const auto& w : words) s += (s.empty() ? "" : ", ") + w;
    return s;
  };
  // The value text of `key` at point i.
  auto value_of = [&](size_t i, const std::string& key) -> std::string {
    const Point& p = plan.points[i];
    if (key == "seed") return std::to_string(*p.seed);
    for (const auto& [k, v] : p.values)
      if (k == key) return value_text(v);
    return "";
  };
  std::map<std::string, std::set<std::string>> wanted;  // key -> accepted values
  for (const auto& filter : only) {
    const size_t eq = filter.find('=');
    MODA_CHECK(eq != std::string::npos && eq > 0, "--only ", filter, ": expected KEY=VALUE, e.g. seed=2");
    const std::string key = filter.substr(0, eq), value = filter.substr(eq + 1);
    MODA_CHECK(std::find(keys.begin(), keys.end(), key) != keys.end(), "--only ", filter, ": '", key,
               "' is not an axis of sweep ", m.name, " (axes: ", keys.empty() ? "none" : joined(keys), ")");
    std::vector<std::string> values;
    for (size_t i = 0; i < plan.points.size(); ++i)
      if (std::find(values.begin(), values.end(), value_of(i, key)) == values.end()) values.push_back(value_of(i, key));
    MODA_CHECK(std::find(values.begin(), values.end(), value) != values.end(), "--only ", filter, ": no point has ",
               key, " = ", value, " (values: ", joined(values), ")");
    wanted[key].insert(value);
  }
  Plan kept;
  kept.manifest = std::move(plan.manifest);
  for (size_t i = 0; i < plan.points.size(); ++i) {
    bool match = true;
    for (const auto& [key, values] : wanted) match = match && values.count(value_of(i, key)) > 0;
    if (!match) continue;
    kept.points.push_back(std::move(plan.points[i]));
    kept.configs.push_back(std::move(plan.configs[i]));
  }
  MODA_CHECK(!kept.points.empty(), "--only ", joined(only), ": no point matches all of these filters");
  return kept;
}

}  // namespace moda::sweep
