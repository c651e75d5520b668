#pragma once
// A point's training config: the manifest's base config with its `set` overrides, the point's
// axis values and its seed applied as `--set` assignments, validated by the training config's own
// reader (distributed/train_config.h), so a sweep refuses exactly what `moda train` would refuse,
// before anything trains.
#include <cstdint>
#include <string>
#include <vector>

#include "distributed/train_config.h"
#include "nn/model_config.h"
#include "sweep/manifest.h"
#include "sweep/points.h"

namespace moda::sweep {

struct PointConfig {
  std::vector<std::string> overrides;  // "key=<JSON value>", the --set arguments of `moda train`
  TrainConfig config;                  // validated
  nn::ParamCount params;
  double flops_per_token = 0;  // training FLOPs per token, PaLM convention (what MFU divides by)
  int64_t planned_tokens() const { return config.train.steps * config.train.global_batch * config.data.seq_len; }
};

// Whether the data files must exist: a dry run, status and report work without the data.
enum class DataFiles { MustExist, MayBeMissing };

// Checks the manifest's keys and values against the training config before any point is built:
// `set` on the base config (errors name manifest.set / manifest.base), then each grid value and
// each zip index on top of them (errors name manifest.grid.KEY[i] / manifest.zip[g][i]), then
// the seeds and report.val_sets. An unknown key fails here with the manifest field that holds it.
void check_manifest_against_config(const Manifest& m);

// The point's overrides and validated config; errors name the point and its assignments.
PointConfig resolve_point(const Manifest& m, const Point& p, DataFiles data);

// The data patterns of a config document that match no file ("data.val.books: no file matches
// 'x'"), for a dry run to warn about.
std::vector<std::string> missing_data_files(const nlohmann::json& config_doc);

// A config document as this build resolves it (defaults filled in, `resolved` of
// distributed/train_config.h), its data patterns kept as written and not required to match files.
// Run folders written by an older build lack fields added since; resolving their config.json
// fills those with today's defaults, so only real differences remain. Throws on an invalid document.
nlohmann::json resolve_config_document(const nlohmann::json& doc);

// The base config with `overrides` applied: the document `moda train` would read.
nlohmann::json apply_overrides(const nlohmann::json& base, const std::vector<std::string>& overrides);

}  // namespace moda::sweep
