// moda sweep report MANIFEST: results.csv, results.json, results.md and plots in the sweep folder
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/sweep_cli.h"
#include "core/atomic_file.h"
#include "sweep/plan.h"
#include "sweep/plots.h"
#include "sweep/report_files.h"

namespace moda::app {

static int run_sweep_report(const std::vector<std::string>& argv_in) {
  std::vector<std::string> argv = argv_in;
  const std::string path = take_manifest_argument(argv);
  Args args(argv, {});
  const sweep::Plan plan = sweep::make_plan(sweep::load_manifest(path), sweep::DataFiles::MayBeMissing);
  const sweep::Manifest& m = plan.manifest;
  sweep::ReportInput in;
  in.manifest = &m;
  in.val_sets = m.report.val_sets;
  if (in.val_sets.empty())
    for (const auto& [name, shards] : plan.configs.front().config.data.val) in.val_sets.push_back(name);
  for (size_t i = 0; i < plan.points.size(); ++i)
    in.points.push_back(sweep::collect_result(plan.points[i], plan.configs[i], plan.run_dir(i), in.val_sets));
  in.groups = sweep::group_over_seeds(in.points, m.report.metrics);
  in.contrasts = sweep::contrasts(m, in.points, sweep::contrast_metrics(in.val_sets));
  std::filesystem::create_directories(m.output);
  auto write = [&](const std::string& name, const std::string& text) {
    write_file_atomically(m.output + "/" + name, [&](std::ostream& out) { out << text; });
  };
  write("results.csv", sweep::results_csv(in));
  write("results.json", sweep::results_json(in).dump(2) + "\n");
  const sweep::PlotOutcome plots = sweep::draw_plots(m.output);  // reads results.json
  if (!plots.note.empty()) spdlog::warn("{}", plots.note);
  write("results.md", sweep::results_markdown(in, plots.files, plots.note));
  int done = 0;
  for (const auto& r : in.points) done += r.status.state == sweep::PointState::Done;
  if (done < static_cast<int>(in.points.size()))
    spdlog::warn("{} of {} points are not done; their rows are incomplete", in.points.size() - done, in.points.size());
  std::printf("%s/results.csv\n%s/results.json\n%s/results.md\n", m.output.c_str(), m.output.c_str(), m.output.c_str());
  for (const auto& f : plots.files) std::printf("%s/%s\n", m.output.c_str(), f.c_str());
  return 0;
}

constexpr const char* kSweepReportUsage =
    R"(usage: moda sweep report MANIFEST
  Writes into the sweep folder (MANIFEST.output): results.csv, results.json and results.md (one
  row per point: axes, params, tokens, final train loss, final validation loss and perplexity per
  set and their average, tokens/s, MFU, wall time; then the mean ± std over seeds of each
  configuration; with manifest.report.contrast, each value of that axis against its first,
  paired by seed) and, with python3 + matplotlib, loss_curves.png and val_ppl.png drawn by
  tools/plot_sweep.py. Prints the paths written.
)";

MODA_COMMAND("sweep report", "tables (CSV, JSON, Markdown) and plots of a sweep: MANIFEST", kSweepReportUsage,
             run_sweep_report);

}  // namespace moda::app
