// moda sweep run MANIFEST [--launcher "mpirun -np 8"] [--parallel K] [--only KEY=VALUE...] [--dry-run]
#include <sstream>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/exit_codes.h"
#include "apps/sweep_cli.h"
#include "sweep/runner.h"

namespace moda::app {

static std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

static int run_sweep_run(const std::vector<std::string>& argv_in) {
  std::vector<std::string> argv = argv_in;
  const std::string path = take_manifest_argument(argv);
  Args args(argv, {"launcher", "parallel", "only"}, {"dry-run"});
  sweep::RunOptions opts;
  opts.launcher = split_words(args.get_or("launcher", ""));
  MODA_USAGE_CHECK(!args.has("launcher") || !opts.launcher.empty(), "option --launcher: empty command");
  opts.parallel = static_cast<int>(args.get_int("parallel", 1));
  MODA_USAGE_CHECK(opts.parallel >= 1 && opts.parallel <= 256, "option --parallel: expected 1 to 256, got ",
                   opts.parallel);
  opts.dry_run = args.has("dry-run");
  const auto data = opts.dry_run ? sweep::DataFiles::MayBeMissing : sweep::DataFiles::MustExist;
  return sweep::run_sweep(sweep::restrict_points(sweep::make_plan(sweep::load_manifest(path), data), args.all("only")),
                          opts);
}

constexpr const char* kSweepRunUsage =
    R"(usage: moda sweep run MANIFEST [--launcher "mpirun -np 8"] [--parallel K] [--only KEY=VALUE...] [--dry-run]
  Trains every point of a sweep manifest (docs/sweeps.md) into MANIFEST.output/runs/<run name>,
  each as a child `moda train --config BASE --set k=v ... --run-dir DIR [--resume]` whose output
  goes to DIR/train.log. Done points are skipped, interrupted ones resumed; a failed point is
  reported (exit status, last log lines) and the others go on. Exit status 1 when any point is
  not done. The whole manifest is checked before anything trains.
  --launcher "WORDS"  put these words before the program (split on spaces, no quoting),
                      e.g. "mpirun -np 8"
  --parallel K        train K points at once (default 1)
  --only KEY=VALUE... only the points whose axis KEY (or "seed") has VALUE, e.g.
                      --only seed=2 model.n_layers=24; values of one key are alternatives
  --dry-run           list the points, parameters, tokens and training FLOPs; train nothing
                      (the data files need not exist)
SIGINT/SIGTERM: each running point gets one SIGTERM (it checkpoints and exits), nothing new
starts; run again to resume.
)";

MODA_COMMAND("sweep run", "train every point of a sweep manifest (resumable): MANIFEST [--parallel K] [--dry-run]",
             kSweepRunUsage, run_sweep_run);

}  // namespace moda::app
