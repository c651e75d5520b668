#include "sweep/plan.h"

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

}  // namespace moda::sweep
