#pragma once
// The sweep's plots are drawn by tools/plot_sweep.py (matplotlib) from results.json and the run
// folders' metrics.jsonl. Without python3 or matplotlib the report keeps its tables and says why.
#include <string>
#include <vector>

namespace moda::sweep {

// The PNG files the script writes into the sweep folder.
const std::vector<std::string>& plot_files();

struct PlotOutcome {
  std::vector<std::string> files;  // written (names relative to the sweep folder)
  std::string note;                // why there are none, when there are none
};

// Runs `$MODA_PYTHON` (default python3) on the script: `$MODA_PLOT_SCRIPT`, else
// tools/plot_sweep.py next to the program's folder (build/moda -> tools/), else in the working
// directory. Its output goes to OUTPUT/plot.log.
PlotOutcome draw_plots(const std::string& output_dir);

}  // namespace moda::sweep
