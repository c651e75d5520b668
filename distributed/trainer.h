#pragma once
// The trainer, built like torchtitan's: the constructor builds the parts (model, optimiser, loader,
// communicator) and shards the model; fit() runs train_step() and, between steps, maybe_eval()
// and maybe_checkpoint(). With a communicator of N > 1 ranks (mpirun), shard_model() shards the
// parameters, gradients and optimiser state over the ranks (distributed/sharded_optimizer.h,
// distributed/parameter_sharding.h: FSDP / ZeRO-3); the global batch is split
// evenly, so the losses equal a one-rank run's to float rounding. Rank 0 alone writes the run
// folder (config, metrics, lock) and logs.
//
// The run folder is a contract other tools build on (docs/training.md):
//   <run>/config.json      the resolved config
//   <run>/metrics.jsonl    one JSON object per logged step / evaluation
//   <run>/checkpoints/     step-N/ folders and the `latest` pointer (distributed/checkpoint.h;
//                          a run of several ranks writes them sharded: sharded_checkpoint.h)
//   <run>/.lock            held while a process writes the folder (distributed/run_lock.h)
#include <memory>
#include <optional>
#include <string>

#include "data/loader.h"
#include "distributed/background_write.h"
#include "distributed/comm/communicator.h"
#include "distributed/evaluate.h"
#include "distributed/metrics.h"
#include "distributed/parameter_sharding.h"
#include "distributed/run_lock.h"
#include "distributed/sharded_checkpoint.h"
#include "distributed/sharded_optimizer.h"
#include "distributed/train_config.h"
#include "nn/language_model.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"

namespace moda {

struct TrainOptions {
  std::string run_dir;
  bool resume = false;
  // Stop (after checkpointing) once this step is done, as if interrupted; 0 = run to the end.
  // The schedule still spans train.steps, so a later --resume continues the same run.
  int64_t stop_after = 0;
};

struct TrainSummary {
  int64_t steps = 0;
  double last_loss = 0;
  EvalReport eval;
  bool stopped_by_signal = false;  // SIGINT/SIGTERM: checkpoint written, run resumable
  // CUDA only, over the training steps (evaluation excluded): live tensor bytes, bytes the
  // caching allocator held (live + cached), and device memory in use by the process as the driver
  // reports it (adds the CUDA context, cuBLASLt workspaces and anything outside the allocator).
  size_t peak_allocated_bytes = 0, peak_reserved_bytes = 0, peak_device_used_bytes = 0;
};

class Trainer {
 public:
  Trainer(const TrainConfig& config, const TrainOptions& options,
          std::unique_ptr<Communicator> comm = make_single_process_communicator());
  TrainSummary fit();

 private:
  std::unique_ptr<nn::LanguageModel> make_model() const;
  std::unique_ptr<nn::AdamW> make_optimizer() const;
  data::TrainLoader make_loader() const;
  bool wants_sharding() const;
  std::string sharding_mode() const;  // none | zero3 | zero2
  void shard_model();                 // a world of one keeps the model whole unless parallel.sharding is full
  std::optional<std::string> find_checkpoint_to_resume();  // the run folder's latest, refused without --resume
  void start_or_resume();

  double train_step();  // one optimiser step over global_batch sequences; returns the mean loss
  void log_step(double loss, double grad_norm, double lr);
  bool maybe_eval(bool last);  // returns true when it evaluated
  void maybe_checkpoint(bool last, bool stopping);
  void save();                         // snapshot now; the files are written in the background (async_checkpoint)
  void refresh_host_snapshot();        // copies the state to save into the reused host buffers
  void prepare_snapshot();             // allocates (pins) those buffers ahead of the first save
  void finish_checkpoint();            // waits for the pending write and commits it (collective when sharded)
  void abandon_checkpoint();           // error path: waits for the pending write and discards it
  void finish_pruning();               // waits for the deletion of old checkpoints (started by a commit)
  std::string last_good_checkpoint();  // for error messages; one rank commits a pending write first
  bool eval_due(bool last) const;
  void track_memory();
  bool any_rank_stopping(bool local);  // also agrees whether every rank's pending write finished
  double mean_over_ranks(double value) const;
  bool is_main_rank() const { return comm_->rank() == 0; }

  TrainConfig cfg_;
  TrainOptions opts_;
  std::unique_ptr<Communicator> comm_;
  std::optional<RunFolderLock> lock_;  // rank 0 only
  int64_t accumulation_ = 1;           // micro-batches per rank per step
  Device device_;
  DType dtype_;
  std::optional<std::string> resume_from_;  // the checkpoint start_or_resume() loads, if any
  std::unique_ptr<nn::LanguageModel> model_;
  std::unique_ptr<nn::AdamW> optimizer_;         // one rank: plain AdamW
  std::unique_ptr<ShardedOptimizer> sharded_;    // sharded runs (N > 1 ranks or parallel.sharding full)
  std::unique_ptr<ParameterSharding> sharding_;  // when its groups are gathered, freed, reduced
  nn::LrSchedule schedule_;
  data::TrainLoader loader_;
  MetricsWriter metrics_;
  ThroughputMeter throughput_;
  Tensor inputs_, targets_;  // host staging for one micro-batch
  int64_t step_ = 0, tokens_seen_ = 0, start_step_ = 0;
  int64_t last_saved_step_ = -1;  // the last step a save was started for (pending or committed)
  // The checkpoint whose files are being written (at most one): its snapshot lives in the work.
  struct PendingCheckpoint {
    int64_t step = 0;
    double snapshot_s = 0;  // the stall on the training thread to take the snapshot
    std::string tmp;        // one rank: the temporary folder
    std::shared_ptr<ShardedSave> sharded;
    std::unique_ptr<BackgroundWrite> write;  // returns the manifest (one rank) or this rank's record
  };
  std::optional<PendingCheckpoint> pending_;
  std::shared_ptr<Checkpoint> snapshot_;      // one rank: the host copy (pinned), reused by every save
  std::unique_ptr<BackgroundWrite> pruning_;  // deletes checkpoints beyond keep_checkpoints
  NamedTensors shard_snapshot_;               // sharded: this rank's host copy (pinned), reused likewise
  bool checkpoint_written_ = false;           // every rank's pending write finished (any_rank_stopping)
  double last_grad_norm_ = 0;
  double elapsed_seconds_ = 0;  // since fit() started, for the ETA
  TrainSummary summary_;
};

// Builds a Trainer and runs it.
TrainSummary train(const TrainConfig& config, const TrainOptions& options,
                   std::unique_ptr<Communicator> comm = make_single_process_communicator());

// "auto" -> this rank's GPU (node-local rank modulo the visible GPUs) when one is present, else
// cpu; "cuda" -> this rank's GPU; "cuda:N", "cpu" as written. Makes a CUDA device current.
Device resolve_device(const std::string& spec, int local_rank = 0);

}  // namespace moda
