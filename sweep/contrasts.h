#pragma once
// The report's contrast table (manifest.report.contrast = a grid axis, e.g. "model.variant"):
// each value of that axis against the axis's first value (the baseline), at every combination of
// the other axes, PAIRED BY SEED — per seed the difference (value − baseline) of each metric, then
// the mean and sample spread of those differences. Pairing removes what a seed does to both runs
// (its initialisation and data order) from the spread, which is what the question "is the effect
// larger than the seed noise?" needs. Only done points pair.
#include <string>
#include <utility>
#include <vector>

#include "sweep/manifest.h"
#include "sweep/results.h"

namespace moda::sweep {

struct ContrastResult {
  std::vector<std::pair<std::string, std::string>> axes;  // the other grid/zip axes: key -> value text
  std::string value, baseline;                            // the contrast axis's value and its first value
  std::vector<std::pair<std::string, Spread>> deltas;     // metric -> differences over the paired seeds
  int pairs = 0;                                          // seeds with both points done
};

// One row per (other axes, non-baseline value) in first-appearance order. `metrics`: names for
// PointResult::metric ("val_loss", "val_loss/SET", ...).
std::vector<ContrastResult> contrasts(const Manifest& m, const std::vector<PointResult>& results,
                                      const std::vector<std::string>& metrics);

}  // namespace moda::sweep
