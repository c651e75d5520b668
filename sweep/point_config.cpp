#include "sweep/point_config.h"

#include "core/error.h"
#include "core/json_config.h"

namespace moda::sweep {

namespace {

std::string assignment(const std::string& key, const nlohmann::json& value) { return key + "=" + value.dump(); }

// The training config reader checks that shard patterns match files. Where the data need not
// exist yet (a dry run on a machine without the corpus), every pattern is replaced by a path that
// always exists, so that every other field is still checked by the one reader there is.
nlohmann::json with_placeholder_data(nlohmann::json doc) {
  if (!doc.contains("data") || !doc["data"].is_object()) return doc;
  auto& data = doc["data"];
  if (data.contains("train")) data["train"] = "/dev/null";
  if (data.contains("val") && data["val"].is_object())
    for (auto& [name, shards] : data["val"].items()) shards = "/dev/null";
  return doc;
}

TrainConfig validate(const nlohmann::json& doc, DataFiles data) {
  try {
    return train_config_from_json(data == DataFiles::MustExist ? doc : with_placeholder_data(doc));
  } catch (const nlohmann::json::exception& e) {
    MODA_FAIL("a field has an unexpected type or shape: ", json_error_text(e));
  }
}

std::vector<std::string> set_overrides(const Manifest& m) {
  std::vector<std::string> out;
  for (const auto& [key, value] : m.set) out.push_back(assignment(key, value));
  return out;
}

// Applies `extra` on top of the base and `set`, validates; an error is prefixed with `field`.
void check_with(const Manifest& m, std::vector<std::string> extra, const std::string& field) {
  std::vector<std::string> overrides = set_overrides(m);
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  try {
    validate(apply_overrides(m.base, overrides), DataFiles::MayBeMissing);
  } catch (const Error& e) {
    std::string what = extra.empty() ? "" : " (";
    for (size_t i = 0; i < extra.size(); ++i) what += (i ? ", " : "") + extra[i];
    MODA_FAIL(field, what, extra.empty() ? "" : ")", ": ", e.what());
  }
}

}  // namespace

nlohmann::json resolve_config_document(const nlohmann::json& doc) {
  nlohmann::json resolved = validate(doc, DataFiles::MayBeMissing).resolved;
  resolved["data"] = doc.at("data");  // the real patterns, not the placeholders validated
  return resolved;
}

nlohmann::json apply_overrides(const nlohmann::json& base, const std::vector<std::string>& overrides) {
  nlohmann::json doc = base;
  for (const auto& o : overrides) apply_override(doc, o);
  return doc;
}

void check_manifest_against_config(const Manifest& m) {
  check_with(m, {}, m.set.empty() ? "manifest.base" : "manifest.base with manifest.set");
  for (const auto& axis : m.grid)
    for (size_t i = 0; i < axis.values.size(); ++i)
      check_with(m, {assignment(axis.key, axis.values[i])},
                 "manifest.grid." + axis.key + "[" + std::to_string(i) + "]");
  for (size_t g = 0; g < m.zip.size(); ++g)
    for (size_t i = 0; i < m.zip[g].size(); ++i) {
      std::vector<std::string> extra;
      for (const auto& axis : m.zip[g].axes) extra.push_back(assignment(axis.key, axis.values[i]));
      check_with(m, extra, "manifest.zip[" + std::to_string(g) + "] index " + std::to_string(i));
    }
  for (size_t i = 0; i < m.seeds.size(); ++i)
    check_with(m, {assignment("train.seed", m.seeds[i])}, "manifest.seeds[" + std::to_string(i) + "]");
  const TrainConfig base = validate(apply_overrides(m.base, set_overrides(m)), DataFiles::MayBeMissing);
  for (size_t i = 0; i < m.report.val_sets.size(); ++i) {
    std::string known;
    for (const auto& [name, shards] : base.data.val) known += (known.empty() ? "" : ", ") + name;
    MODA_CHECK(base.data.val.count(m.report.val_sets[i]), "manifest.report.val_sets[", i, "]: '", m.report.val_sets[i],
               "' is not a validation set of the base config's data.val (sets: ", known.empty() ? "none" : known, ")");
  }
}

PointConfig resolve_point(const Manifest& m, const Point& p, DataFiles data) {
  PointConfig pc;
  pc.overrides = set_overrides(m);
  for (const auto& [key, value] : p.values) pc.overrides.push_back(assignment(key, value));
  if (p.seed) pc.overrides.push_back(assignment("train.seed", *p.seed));
  try {
    const nlohmann::json doc = apply_overrides(m.base, pc.overrides);
    pc.config = validate(doc, data);
    pc.config.resolved["data"] = doc.at("data");  // the real patterns, also where placeholders were validated
  } catch (const Error& e) {
    std::string sets;
    for (const auto& o : pc.overrides) sets += " --set " + o;
    MODA_FAIL("point '", p.name, "' (base", sets, "): ", e.what());
  }
  pc.params = nn::count_parameters(pc.config.model);
  pc.flops_per_token = nn::training_flops_per_token(pc.config.model, pc.config.data.seq_len).palm_per_token();
  return pc;
}

std::vector<std::string> missing_data_files(const nlohmann::json& doc) {
  std::vector<std::string> missing;
  auto check = [&](const nlohmann::json& patterns, const std::string& field) {
    for (const auto& p : patterns.is_array() ? patterns : nlohmann::json::array({patterns})) {
      if (!p.is_string()) continue;  // the config reader reports the type
      try {
        expand_shards(p.get<std::string>(), field);
      } catch (const Error& e) {
        missing.push_back(e.what());
      }
    }
  };
  if (!doc.contains("data") || !doc["data"].is_object()) return missing;
  const auto& data = doc["data"];
  if (data.contains("train")) check(data["train"], "data.train");
  if (data.contains("val") && data["val"].is_object())
    for (const auto& [name, shards] : data["val"].items()) check(shards, "data.val." + name);
  return missing;
}

}  // namespace moda::sweep
