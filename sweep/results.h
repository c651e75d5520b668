#pragma once
// What `moda sweep report` reads from each point's run folder, and the mean and spread over seeds
// of each configuration (the points that differ only in their seed).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sweep/manifest.h"
#include "sweep/point_config.h"
#include "sweep/point_status.h"
#include "sweep/points.h"

namespace moda::sweep {

struct SetResult {
  double loss = 0, ppl = 0;
  int64_t tokens = 0;
};

struct PointResult {
  const Point* point = nullptr;
  std::string run_dir;
  PointStatus status;
  int64_t params = 0;
  int64_t tokens = 0;                    // training tokens seen (the last training record)
  std::optional<double> train_loss;      // the last training record's loss
  std::map<std::string, SetResult> val;  // the final evaluation, reported sets only
  std::optional<SetResult> val_average;  // token-weighted over the reported sets, ppl = exp(loss)
  // Training throughput over every logged window but the first (start-up, compilation), weighted
  // by the window's time; MFU likewise (GPU runs only).
  std::optional<double> tokens_per_s, mfu;
  std::optional<double> wall_s;  // sum of the sweep's attempts (start-up, evaluations included)

  // A metric of report_metric_names() (or "val_loss/SET", "val_ppl/SET"); empty when unknown.
  std::optional<double> metric(const std::string& name) const;
};

// Reads the point's run folder. `val_sets` lists the sets to report (empty: every set of the
// config); values come from the evaluation at the final step only.
PointResult collect_result(const Point& p, const PointConfig& c, const std::string& run_dir,
                           const std::vector<std::string>& val_sets);

struct Spread {
  double mean = 0;
  std::optional<double> std;  // sample standard deviation (n - 1); none for n = 1
  double min = 0, max = 0;
  int n = 0;  // seeds that have the metric
};

struct GroupResult {
  std::vector<std::pair<std::string, std::string>> axes;  // key -> value text, without the seed
  std::vector<const PointResult*> members;
  std::map<std::string, Spread> metrics;  // only metrics at least one member has
};

// Groups points that differ only in their seed (in first-appearance order) and summarises
// `metrics` over each group's done points (a partial run's values are not comparable).
std::vector<GroupResult> group_over_seeds(const std::vector<PointResult>& results,
                                          const std::vector<std::string>& metrics);

Spread summarise(const std::vector<double>& values);

}  // namespace moda::sweep
