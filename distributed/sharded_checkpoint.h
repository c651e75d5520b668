#pragma once
// Sharded checkpoints: what a run of N > 1 ranks writes (docs/reliability.md, "Sharded
// checkpoints"). The state that is sharded, the fp32 masters and AdamW moments of every flat
// parameter group (distributed/sharded_optimizer.h), stays sharded on disk: each rank writes its
// own [S] pieces, nobody gathers the whole state.
//
//   <run>/checkpoints/step-N/rank-00000-of-00002.safetensors  rank 0's shard: for every group
//                     "<group>.master", "<group>.exp_avg", "<group>.exp_avg_sq", F32 [S] (padding 0)
//   <run>/checkpoints/step-N/rank-00001-of-00002.safetensors  rank 1's
//   <run>/checkpoints/step-N/manifest.json  written last, by rank 0: format, step, world size,
//                     program version, the group layout (each group's n, S, every rank's [lo, hi)
//                     and each parameter's name, offset and shape inside its group), the trainer
//                     state (step, tokens, loader, resolved config, AdamW step count) and the
//                     size and SHA-256 of every shard file
//
// Commit: every rank writes its file into step-N.tmp.<rank 0's pid>, hashes it (reading it back)
// and sends size and hash to rank 0 (an all-gather, which is also the barrier); rank 0 checks
// every file's size on disk, writes the manifest and renames the folder into place, then replaces
// `latest` (distributed/checkpoint.h's commit). The model's parameters are not stored: they are
// the masters in the compute dtype.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "distributed/checkpoint.h"
#include "distributed/comm/communicator.h"
#include "distributed/shard_layout.h"
#include "distributed/sharded_optimizer.h"
#include "nn/language_model.h"

namespace moda {

// The vectors each group has per rank, in file order.
inline const std::vector<std::string>& shard_kinds() {
  static const std::vector<std::string> kinds = {"master", "exp_avg", "exp_avg_sq"};
  return kinds;
}

// "rank-00003-of-00008.safetensors"
std::string shard_file_name(int rank, int world);

// The manifest's "groups": the model's flat groups as `world` ranks shard them.
nlohmann::json group_layout(const nn::LanguageModel& model, int world);

// Collective: every rank passes its own optimiser; rank 0's `state` (step, tokens, loader,
// config) goes into the manifest. Keeps the newest `keep` step folders (0: all). Returns the
// checkpoint folder on rank 0 (an empty string on the others). A failure on any rank throws there (the trainer then
// aborts the job); the previous checkpoints and `latest` are untouched until rank 0's rename.
std::string save_sharded_checkpoint(Communicator& comm, const std::string& run_dir, int64_t step,
                                    const nn::LanguageModel& model, const ShardedOptimizer& optimizer,
                                    const nlohmann::json& state, int keep);

// save_sharded_checkpoint() in three parts, for writes that overlap training (the trainer's
// train.async_checkpoint): begin_sharded_save() is collective and runs on the training thread:
// rank 0 makes the temporary folder, every rank learns its name and copies its optimiser shard to
// host memory (the stall). write_sharded_save() writes and hashes this rank's file from that copy,
// no collectives and no shared state, so it may run on a background thread.
// commit_sharded_save() is collective again (all-gather of the records, rank 0's checks, manifest,
// rename and `latest`, barrier) and runs on the training thread once every rank's write is done.
struct ShardedSave {
  int64_t step = 0;
  int rank = 0, world = 1;
  std::string tmp;        // step-N.tmp.<rank 0's pid>
  NamedTensors shard;     // this rank's host copy of its shard (export_state)
  nlohmann::json groups;  // rank 0: group_layout()
  nlohmann::json state;   // rank 0: the trainer state plus adamw_step
};
// `host_copy`, when given, is where the shard is copied (ShardedOptimizer::export_state_into): a
// caller that keeps it from one save to the next reuses its pinned buffers; it must not change
// while the save's write runs.
ShardedSave begin_sharded_save(Communicator& comm, const std::string& run_dir, int64_t step,
                               const nn::LanguageModel& model, const ShardedOptimizer& optimizer,
                               const nlohmann::json& state, NamedTensors* host_copy = nullptr);
nlohmann::json write_sharded_save(const ShardedSave& save);  // this rank's manifest entry
// `pruned`: as commit_checkpoint_folder's (rank 0 prunes; the other ranks' list stays empty).
std::string commit_sharded_save(Communicator& comm, const std::string& run_dir, const ShardedSave& save,
                                const nlohmann::json& mine, int keep, std::vector<std::string>* pruned = nullptr);

// The two halves of a save without the collectives (save_sharded_checkpoint calls them; tests
// use them to write checkpoints of any world size in one process): one rank's file in folder
// `tmp`, returning its manifest entry, and the manifest. `state` holds adamw_step too.
nlohmann::json write_shard_file(const std::string& tmp, int rank, int world, int64_t step, const NamedTensors& shard);
nlohmann::json sharded_manifest(int64_t step, int world, const nlohmann::json& groups, const nlohmann::json& state,
                                const nlohmann::json& files);

// A sharded checkpoint's manifest, read and checked against itself (the files it lists, the
// arithmetic of every range): errors name the manifest and the field.
struct ShardedCheckpoint {
  struct Param {
    std::string name;
    int64_t offset = 0;
    Shape shape;
  };
  struct Group {
    std::string name;
    int64_t numel = 0, shard = 0;
    std::vector<Param> params;
  };
  std::string dir;
  int world_size = 0;
  int64_t step = 0;
  std::vector<Group> groups;
  nlohmann::json state;     // step, tokens, loader, config, adamw_step
  nlohmann::json manifest;  // the whole document
};

bool is_sharded_checkpoint(const std::string& dir);  // its manifest says so
ShardedCheckpoint read_sharded_checkpoint(const std::string& dir);

// Ranges of a group's full (unsharded) vectors, read from the shard files that hold them. Each
// file is loaded at most once, when first needed, after its SHA-256 is compared with the manifest
// (verify) and before its tensors are checked against the manifest's layout.
class ShardReader {
 public:
  ShardReader(const ShardedCheckpoint& checkpoint, bool verify);
  // out[0, hi - lo) <- elements [lo, hi) of group `group`'s vector `kind`.
  void read(const std::string& group, const std::string& kind, int64_t lo, int64_t hi, float* out);
  std::vector<int> ranks_read() const;  // the shard files loaded so far

 private:
  const SafetensorsFile& shard(int rank);
  const ShardedCheckpoint& ck_;
  bool verify_;
  std::map<std::string, const ShardedCheckpoint::Group*> groups_;
  std::map<int, SafetensorsFile> files_;
};

// The whole checkpoint in the one-rank format of distributed/checkpoint.h: model weights (the
// fp32 masters cut into parameters), optimiser state ("<name>.exp_avg", "<name>.exp_avg_sq",
// "<name>.master", "__step__") and the trainer state (the manifest's, without adamw_step; the
// loader state keeps its world size, which TrainLoader converts on load).
Checkpoint consolidate_sharded(const ShardedCheckpoint& checkpoint, bool with_optimizer, bool verify);

// load_checkpoint()'s path for a sharded folder: consolidate_sharded() as a LoadedCheckpoint.
LoadedCheckpoint load_sharded_as_one(const std::string& dir, bool with_optimizer, bool verify);

// The world size a checkpoint was written at (1 for the one-rank layout).
int checkpoint_world_size(const std::string& dir);

// Collective, for `--resume` of a run of several ranks: checks the checkpoint's config against
// `resolved` (check_resume_config), then fills every rank's optimiser shard (and through it the
// model) from checkpoint folder `dir`, sharded at any world size (each rank reads only the shard
// files that overlap its ranges) or one-rank (read whole). The layout must be this model's: an
// error names the group or parameter. Returns the trainer state (step, tokens, loader, config).
nlohmann::json restore_sharded(const std::string& dir, const nlohmann::json& resolved, const nn::LanguageModel& model,
                               ShardedOptimizer& optimizer);

}  // namespace moda
