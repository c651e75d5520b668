// moda train --config FILE [--set key=value]... [--run-dir DIR] [--resume]
#include <spdlog/spdlog.h>

#include "apps/args.h"
#include "apps/command.h"
#include "distributed/launch.h"
#include "distributed/trainer.h"

namespace moda::app {

static int run_train(const std::vector<std::string>& argv) {
  Args args(argv, {"config", "set", "run-dir", "stop-after"}, {"resume"});
  const std::string config_path = args.get("config");
  TrainOptions opts;  // the command line is checked whole before any file is read
  opts.run_dir = args.get_or("run-dir", "runs/latest");
  opts.resume = args.has("resume");
  opts.stop_after = args.get_int("stop-after", 0);
  World world;  // mpirun / srun: one rank per process; else a world of one
  if (world.rank() > 0) {
    spdlog::set_pattern("[rank " + std::to_string(world.rank()) + "] [%l] %v");
    spdlog::set_level(spdlog::level::warn);  // rank 0 logs the run
  }
  TrainSummary s;
  try {
    TrainConfig cfg = load_train_config(config_path, args.all("set"));
    s = train(cfg, opts, world.take_communicator());
  } catch (const std::exception& e) {
    if (world.size() == 1) throw;
    spdlog::error("rank {} of {}: {}", world.rank(), world.size(), e.what());
    world.abort(1);  // the other ranks would wait in their next collective forever
  }
  if (world.rank() > 0) return 0;
  if (!s.eval.sets.empty())
    std::printf("\nvalidation after %lld steps:\n%s", static_cast<long long>(s.steps), s.eval.table().c_str());
  return 0;
}

constexpr const char* kTrainUsage =
    R"(usage: moda train --config FILE [--set key=value]... [--run-dir DIR] [--resume] [--stop-after N]
  Trains (or resumes) a model; logs go to stderr, the final validation table to stdout.
  --config FILE       JSON config: model, data, optim, train sections (docs/training.md)
  --set key=value     override one config field, e.g. --set train.steps=20; the value is parsed as
                      JSON when it is valid JSON, else taken as a string; repeatable
  --run-dir DIR       run folder: config.json, metrics.jsonl, checkpoints/ (default runs/latest)
  --resume            continue from DIR/checkpoints/latest
  --stop-after N      stop (after a checkpoint) once step N is done, as if interrupted
Several ranks: mpirun -np N moda train ... (one process per rank; train.global_batch is split
evenly over the ranks; docs/distributed.md).
)";

MODA_COMMAND("train", "train a model: --config FILE [--set k=v]... [--run-dir DIR] [--resume] [--stop-after N]",
             kTrainUsage, run_train);

}  // namespace moda::app
