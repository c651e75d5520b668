#pragma once
// A manifest made concrete: its points and their validated configs, checked whole before any
// command acts on one (so a bad manifest fails before anything trains), and where each point's
// run folder is.
#include <string>
#include <vector>

#include "sweep/manifest.h"
#include "sweep/point_config.h"
#include "sweep/point_status.h"
#include "sweep/points.h"

namespace moda::sweep {

struct Plan {
  Manifest manifest;
  std::vector<Point> points;
  std::vector<PointConfig> configs;  // one per point

  std::string run_dir(size_t i) const { return manifest.runs_dir() + "/" + points[i].name; }
  PointStatus status(size_t i) const;
  std::vector<PointStatus> statuses() const;
};

Plan make_plan(Manifest m, DataFiles data);

// Keeps the points that match every `KEY=VALUE` filter (`moda sweep run --only`): KEY is an axis
// key of the manifest or "seed", VALUE the axis value as it reads in a run name ("pre", 24).
// Filters on one key are alternatives (seed=1, seed=2: either); on different keys all must hold.
// A malformed filter, a KEY that is no axis or a VALUE no point has is an error naming the filter
// and the choices.
Plan restrict_points(Plan plan, const std::vector<std::string>& only);

}  // namespace moda::sweep
