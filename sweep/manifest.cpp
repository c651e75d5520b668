#include "sweep/manifest.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/json_config.h"

namespace moda::sweep {

const std::vector<std::string>& report_metric_names() {
  static const std::vector<std::string> names = {"train_loss", "val_loss", "val_ppl", "tokens_per_s",
                                                 "mfu",        "wall_s",   "params",  "tokens"};
  return names;
}

std::vector<std::string> Manifest::axis_keys() const {
  std::vector<std::string> keys;
  for (const auto& a : grid) keys.push_back(a.key);
  for (const auto& z : zip)
    for (const auto& a : z.axes) keys.push_back(a.key);
  return keys;
}

namespace {

// A `--set` key as the training config spells it: "section.field" (or deeper).
void check_key(const std::string& key, const std::string& field) {
  MODA_CHECK(key.find('.') != std::string::npos && key.front() != '.' && key.back() != '.', field, ": key '", key,
             "' is not a config field; expected section.field, e.g. model.n_layers");
}

// An axis value: a JSON scalar (a run name and a --set value are made from it).
void check_scalar(const nlohmann::json& v, const std::string& field) {
  MODA_CHECK(v.is_string() || v.is_number() || v.is_boolean(), field, ": value ", json_excerpt(v),
             " is invalid: expected a string, number or boolean");
}

// `distinct`: a grid axis listing a value twice would train the same points twice; in a zip group
// a value may repeat (n_layers 12, 24, 48 with micro_batch 32, 16, 16).
Axis read_axis(const std::string& key, const nlohmann::json& values, const std::string& field, bool distinct) {
  check_key(key, field);
  MODA_CHECK(values.is_array(), field, ": expected a list of values, got ", json_excerpt(values));
  MODA_CHECK(!values.empty(), field, ": the list of values is empty (an axis needs at least one value)");
  Axis axis{key, {}};
  for (size_t i = 0; i < values.size(); ++i) {
    check_scalar(values[i], field + "[" + std::to_string(i) + "]");
    for (const auto& seen : axis.values)
      MODA_CHECK(!distinct || seen != values[i], field, ": value ", values[i].dump(), " is listed twice");
    axis.values.push_back(values[i]);
  }
  return axis;
}

std::vector<Axis> read_grid(const nlohmann::json& grid) {
  MODA_CHECK(grid.is_object(), "manifest.grid: expected an object {\"section.field\": [values]}, got ",
             json_excerpt(grid));
  std::vector<Axis> axes;
  for (const auto& [key, values] : grid.items()) axes.push_back(read_axis(key, values, "manifest.grid." + key, true));
  return axes;
}

std::vector<ZipGroup> read_zip(const nlohmann::json& zip) {
  MODA_CHECK(zip.is_array(), "manifest.zip: expected a list of objects {\"section.field\": [values]}, got ",
             json_excerpt(zip));
  std::vector<ZipGroup> groups;
  for (size_t g = 0; g < zip.size(); ++g) {
    const std::string field = "manifest.zip[" + std::to_string(g) + "]";
    MODA_CHECK(zip[g].is_object() && !zip[g].empty(), field,
               ": expected a non-empty object {\"section.field\": [values]}, got ", json_excerpt(zip[g]));
    ZipGroup group;
    for (const auto& [key, values] : zip[g].items()) {
      group.axes.push_back(read_axis(key, values, field + "." + key, false));
      MODA_CHECK(group.axes.back().values.size() == group.axes.front().values.size(), field, ".", key, ": has ",
                 group.axes.back().values.size(), " values but ", group.axes.front().key, " has ",
                 group.axes.front().values.size(),
                 "; lists in one zip group move in lock-step and must be equally long");
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

std::vector<uint64_t> read_seeds(const nlohmann::json& seeds) {
  MODA_CHECK(seeds.is_array() && !seeds.empty(), "manifest.seeds: expected a non-empty list of integers, got ",
             json_excerpt(seeds));
  std::vector<uint64_t> out;
  for (size_t i = 0; i < seeds.size(); ++i) {
    const std::string field = "manifest.seeds[" + std::to_string(i) + "]";
    MODA_CHECK(seeds[i].is_number_unsigned() || (seeds[i].is_number_integer() && seeds[i].get<int64_t>() >= 0), field,
               ": value ", json_excerpt(seeds[i]), " is invalid: expected a non-negative integer");
    const uint64_t s = seeds[i].get<uint64_t>();
    for (uint64_t seen : out) MODA_CHECK(seen != s, field, ": seed ", s, " is listed twice");
    out.push_back(s);
  }
  return out;
}

std::vector<std::string> read_string_list(const nlohmann::json& v, const std::string& field) {
  MODA_CHECK(v.is_array(), field, ": expected a list of strings, got ", json_excerpt(v));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    MODA_CHECK(v[i].is_string() && !v[i].get<std::string>().empty(), field, "[", i, "]: value ", json_excerpt(v[i]),
               " is invalid: expected a non-empty string");
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

ReportSpec read_report(const nlohmann::json& section) {
  MODA_CHECK(section.is_object(), "manifest.report: expected an object, got ", json_excerpt(section));
  FieldReader r(section, "manifest.report");
  ReportSpec spec;
  if (r.has("val_sets")) spec.val_sets = read_string_list(r.raw("val_sets"), "manifest.report.val_sets");
  spec.metrics = {"val_loss", "val_ppl", "train_loss"};
  if (r.has("metrics")) spec.metrics = read_string_list(r.raw("metrics"), "manifest.report.metrics");
  spec.contrast = r.get("contrast", spec.contrast);
  const auto& known = report_metric_names();
  for (size_t i = 0; i < spec.metrics.size(); ++i) {
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    MODA_CHECK(std::find(known.begin(), known.end(), spec.metrics[i]) != known.end(), "manifest.report.metrics[", i,
               "]: unknown metric '", spec.metrics[i], "' (known: ", list, ")");
  }
  r.finish();
  return spec;
}

// Every key is set by one place only: a key in two axes, or in an axis and "set", is a mistake.
void check_keys_unique(const Manifest& m) {
  std::set<std::string> seen;
  for (const auto& key : m.axis_keys()) {
    MODA_CHECK(seen.insert(key).second, "manifest: key '", key, "' is an axis twice (grid and zip keys must differ)");
    MODA_CHECK(key != "train.seed" || m.seeds.empty(), "manifest: key 'train.seed' is an axis and manifest.seeds is ",
               "given; list the seeds in manifest.seeds only");
  }
  for (const auto& [key, value] : m.set) {
    MODA_CHECK(!seen.count(key), "manifest.set.", key, ": key is also an axis; set it in one place");
    MODA_CHECK(key != "train.seed" || m.seeds.empty(), "manifest.set.train.seed: manifest.seeds is given; ",
               "list the seeds there only");
  }
}

}  // namespace

Manifest manifest_from_json(const nlohmann::json& doc, const std::string& path) {
  MODA_CHECK(doc.is_object(), "manifest: expected a JSON object, got ", json_excerpt(doc));
  FieldReader top(doc, "manifest");
  Manifest m;
  m.path = path;
  m.name = top.require<std::string>("name");
  MODA_CHECK(!m.name.empty(), "manifest.name: must not be empty");
  const nlohmann::json& base = top.raw("base");
  if (base.is_string()) {
    // Relative to the manifest's folder, so that a manifest and its base config move together.
    std::filesystem::path p = base.get<std::string>();
    if (p.is_relative() && !path.empty()) p = std::filesystem::path(path).parent_path() / p;
    m.base_path = p.lexically_normal().string();
    m.base = read_json_file(m.base_path);
  } else {
    MODA_CHECK(base.is_object(), "manifest.base: expected a config file path or an inline config object, got ",
               json_excerpt(base));
    m.base = base;
  }
  MODA_CHECK(m.base.is_object(), "manifest.base: the config '", m.base_path, "' is not a JSON object");
  if (top.has("set")) {
    const auto& set = top.raw("set");
    MODA_CHECK(set.is_object(), "manifest.set: expected an object {\"section.field\": value}, got ", json_excerpt(set));
    for (const auto& [key, value] : set.items()) {
      check_key(key, "manifest.set." + key);
      m.set.emplace_back(key, value);
    }
  }
  if (top.has("grid")) m.grid = read_grid(top.raw("grid"));
  if (top.has("zip")) m.zip = read_zip(top.raw("zip"));
  if (top.has("seeds")) m.seeds = read_seeds(top.raw("seeds"));
  m.run_name = top.require<std::string>("run_name");
  MODA_CHECK(!m.run_name.empty(), "manifest.run_name: must not be empty");
  m.output = top.require<std::string>("output");
  MODA_CHECK(!m.output.empty(), "manifest.output: must not be empty");
  if (top.has("report"))
    m.report = read_report(top.raw("report"));
  else
    m.report.metrics = {"val_loss", "val_ppl", "train_loss"};
  top.finish();
  check_keys_unique(m);
  if (!m.report.contrast.empty()) {
    std::string grid_keys;
    bool found = false;
    for (const auto& axis : m.grid) {
      grid_keys += (grid_keys.empty() ? "" : ", ") + axis.key;
      found = found || (axis.key == m.report.contrast && axis.values.size() >= 2);
    }
    MODA_CHECK(found, "manifest.report.contrast: '", m.report.contrast, "' is not a grid axis with two or more values ",
               "(grid axes: ", grid_keys.empty() ? "none" : grid_keys, ")");
  }
  return m;
}

Manifest load_manifest(const std::string& path) {
  const nlohmann::json doc = parse_json_file(path, "sweep manifest");
  try {
    return manifest_from_json(doc, path);
  } catch (const Error& e) {
    MODA_FAIL(path, ": ", e.what());
  }
}

}  // namespace moda::sweep
