#pragma once
// A sweep manifest (docs/sweeps.md): a base training config, the axes to vary over `--set` keys,
// the seeds, how to name each point's run folder and what to report. Parsing checks the shape of
// every field; errors name the manifest file and field ("manifest.grid.model.norm: ...").
// Whether the `--set` keys exist in the training config is checked when the points' configs are
// built (sweep/point_config.h), also before anything trains.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace moda::sweep {

// One axis: a `--set` key and the values it takes.
struct Axis {
  std::string key;                     // "model.norm"
  std::vector<nlohmann::json> values;  // each a JSON scalar (string, number, boolean)
};

// Axes that move in lock-step: value i of every axis belongs to the same point.
struct ZipGroup {
  std::vector<Axis> axes;
  size_t size() const { return axes.empty() ? 0 : axes.front().values.size(); }
};

struct ReportSpec {
  std::vector<std::string> val_sets;  // empty: every set of the base config's data.val
  std::vector<std::string> metrics;   // the grouped table's columns (results.md), see report_metric_names()
  // A grid axis whose values are compared with its first (the baseline), paired by seed, in the
  // report's contrast table (sweep/contrasts.h); "" for none.
  std::string contrast;
};

struct Manifest {
  std::string path;  // the manifest file ("" for an in-memory one)
  std::string name;
  // The base training config: a file (resolved relative to the manifest's folder) or inline.
  std::string base_path;                                    // "" when inline
  nlohmann::json base;                                      // the config document (read from base_path when given)
  std::vector<std::pair<std::string, nlohmann::json>> set;  // fixed overrides for every point
  std::vector<Axis> grid;                                   // cartesian product, in key order (the last varies fastest)
  std::vector<ZipGroup> zip;                                // each group is one more dimension of the product
  std::vector<uint64_t> seeds;  // sets train.seed; empty: the base config's seed, no seed axis
  std::string run_name;         // template, e.g. "{model.norm}-L{model.n_layers}-s{seed}"
  std::string output;           // sweep folder, relative to the working directory
  ReportSpec report;

  // Every axis key (grid, then zip groups), in the order the points vary (slowest first).
  std::vector<std::string> axis_keys() const;
  std::string runs_dir() const { return output + "/runs"; }
};

// The metric names report.metrics accepts.
const std::vector<std::string>& report_metric_names();

// Parses and checks a manifest document; `path` names it in errors and anchors `base`.
Manifest manifest_from_json(const nlohmann::json& doc, const std::string& path);
// Reads a manifest file (and its base config file).
Manifest load_manifest(const std::string& path);

}  // namespace moda::sweep
