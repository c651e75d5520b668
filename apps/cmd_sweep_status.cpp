// moda sweep status MANIFEST: one line per point: done / partial (step k of n) / failed / not started
#include <cstdio>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/sweep_cli.h"
#include "sweep/plan.h"
#include "sweep/points_table.h"

namespace moda::app {

static int run_sweep_status(const std::vector<std::string>& argv_in) {
  std::vector<std::string> argv = argv_in;
  const std::string path = take_manifest_argument(argv);
  Args args(argv, {"only"});
  const sweep::Plan plan = sweep::restrict_points(
      sweep::make_plan(sweep::load_manifest(path), sweep::DataFiles::MayBeMissing), args.all("only"));
  const auto statuses = plan.statuses();
  int done = 0;
  for (const auto& s : statuses) done += s.state == sweep::PointState::Done;
  std::printf("sweep %s: %d of %zu points done (run folders under %s)\n%s", plan.manifest.name.c_str(), done,
              plan.points.size(), plan.manifest.runs_dir().c_str(),
              sweep::format_points_table(plan.manifest, plan.points, plan.configs, &statuses).c_str());
  return 0;
}

constexpr const char* kSweepStatusUsage =
    R"(usage: moda sweep status MANIFEST [--only KEY=VALUE...]
  Prints one row per point of the sweep: its axes, parameters, tokens, training FLOPs and state,
  read from its run folder: done, partial (step k of n), failed (exit status), not started, stale.
  --only KEY=VALUE...  only the points whose axis KEY (or "seed") has VALUE (as `sweep run`)
)";

MODA_COMMAND("sweep status", "the state of every point of a sweep manifest: MANIFEST", kSweepStatusUsage,
             run_sweep_status);

}  // namespace moda::app
