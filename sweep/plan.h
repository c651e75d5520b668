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

}  // namespace moda::sweep
