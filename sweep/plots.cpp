#include "sweep/plots.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "sweep/child_process.h"
#include "sweep/runner.h"

namespace fs = std::filesystem;

namespace moda::sweep {

// The script's exit status when matplotlib cannot be imported (tools/plot_sweep.py).
constexpr int kNoMatplotlib = 3;

const std::vector<std::string>& plot_files() {
  static const std::vector<std::string> files = {"loss_curves.png", "val_ppl.png", "contrast.png"};
  return files;
}

static std::string find_script() {
  if (const char* env = std::getenv("MODA_PLOT_SCRIPT")) return env;
  const fs::path next_to_program = fs::path(self_executable()).parent_path().parent_path() / "tools/plot_sweep.py";
  if (fs::exists(next_to_program)) return next_to_program.string();
  return "tools/plot_sweep.py";
}

PlotOutcome draw_plots(const std::string& output_dir) {
  PlotOutcome out;
  const std::string script = find_script();
  if (!fs::exists(script)) {
    out.note = "No plots: the plotting script " + script + " was not found (set MODA_PLOT_SCRIPT).";
    return out;
  }
  const char* env_python = std::getenv("MODA_PYTHON");
  const std::string python = env_python ? env_python : "python3";
  const std::string log = output_dir + "/plot.log";
  fs::remove(log);
  for (const auto& f : plot_files()) fs::remove(output_dir + "/" + f);  // no stale plot survives
  int code = 0;
  try {
    code = wait_child(spawn_logged({python, script, output_dir}, log));
  } catch (const Error& e) {
    out.note = "No plots: " + std::string(e.what()) + " (install python3 and python3-matplotlib).";
    return out;
  }
  if (code == kNoMatplotlib) {
    out.note = "No plots: matplotlib is not installed for " + python +
               " (Debian: apt-get install python3-matplotlib; or set MODA_PYTHON).";
  } else if (code != 0) {
    out.note = "No plots: " + python + " " + script + " exited with status " + std::to_string(code) +
               "; its output is in plot.log:\n\n" + last_lines(log, 8);
  }
  for (const auto& f : plot_files())
    if (code == 0 && fs::exists(output_dir + "/" + f)) out.files.push_back(f);
  if (code == 0 && out.files.empty()) out.note = "No plots: the script wrote none (plot.log).";
  return out;
}

}  // namespace moda::sweep
