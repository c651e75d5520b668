#pragma once
// The table `sweep run --dry-run`, `sweep run` (at the end) and `sweep status` print: one row per
// point with its axis values, parameters, planned tokens and training FLOPs, and (when given) its
// state.
#include <string>
#include <vector>

#include "sweep/manifest.h"
#include "sweep/point_config.h"
#include "sweep/point_status.h"
#include "sweep/points.h"

namespace moda::sweep {

std::string format_points_table(const Manifest& m, const std::vector<Point>& points,
                                const std::vector<PointConfig>& configs, const std::vector<PointStatus>* statuses);

}  // namespace moda::sweep
