#pragma once
// The files `moda sweep report` writes into the sweep folder (each replaced atomically):
//   results.csv   one row per point: axes, seed, state, params, tokens, final train loss, final
//                 validation loss and perplexity per set and their average, tokens/s, MFU, wall time
//   results.json  the same rows plus run folders, and the groups over seeds (mean, std, min, max)
//   results.md    both tables in Markdown, the plots (or why there are none)
// With manifest.report.contrast, results.json and results.md also hold the contrast table
// (sweep/contrasts.h): each value of that axis minus the baseline, paired by seed.
#include <string>
#include <vector>

#include "sweep/contrasts.h"
#include "sweep/manifest.h"
#include "sweep/results.h"

namespace moda::sweep {

struct ReportInput {
  const Manifest* manifest = nullptr;
  std::vector<std::string> val_sets;  // the reported sets, in column order
  std::vector<PointResult> points;
  std::vector<GroupResult> groups;
  std::vector<ContrastResult> contrasts;  // empty without manifest.report.contrast
};

// The metrics a contrast compares: the average validation loss, then each reported set's.
std::vector<std::string> contrast_metrics(const std::vector<std::string>& val_sets);

std::string results_csv(const ReportInput& in);
nlohmann::json results_json(const ReportInput& in);
// `plots`: the PNG file names written, or empty with `plot_note` saying why.
std::string results_markdown(const ReportInput& in, const std::vector<std::string>& plots,
                             const std::string& plot_note);

// "1.234 ± 0.012" (std over seeds), "1.234" for one seed; `digits` after the point; `sign`: "+0.012"
// for a difference.
std::string mean_pm_std(const Spread& s, int digits, bool sign = false);

}  // namespace moda::sweep
