#pragma once
// Checkpoints: one folder per step under <run>/checkpoints/, written completely under a temporary
// name and then renamed into place, after which the pointer file <run>/checkpoints/latest is
// replaced atomically. A crash at any moment leaves the previous checkpoint and pointer intact.
//
//   <run>/checkpoints/step-N/model.safetensors      weights (fp32), names as the model's state dict
//   <run>/checkpoints/step-N/optimizer.safetensors  AdamW moments (+ fp32 masters), "__step__"
//   <run>/checkpoints/step-N/state.json             trainer state (step, tokens, loader, config)
//   <run>/checkpoints/step-N/manifest.json          written last: size and SHA-256 of each file above
//   <run>/checkpoints/latest                        "step-N\n"
//
// A checkpoint is COMPLETE when its manifest.json parses and every file it lists exists with the
// listed size; loading also compares SHA-256 sums (verify = true, the default), so flipped bytes
// give an error naming the file instead of a model of garbage. A run of several ranks writes the
// sharded layout of distributed/sharded_checkpoint.h into the same step-N folders, with the same
// manifest, commit, `latest` and retention rules; load_checkpoint() reads either layout.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace moda {

struct Checkpoint {
  NamedTensors model;
  NamedTensors optimizer;
  nlohmann::json state;
};

// Writes checkpoint `step` into run_dir and points `latest` at it; keeps the newest `keep` step
// folders (0 keeps all) and never removes the one just written. Leftovers of interrupted saves
// (remove_stale_temporaries) are cleaned first. Returns the checkpoint folder.
std::string save_checkpoint(const std::string& run_dir, int64_t step, const Checkpoint& ckpt, int keep = 0);

struct LoadedCheckpoint {
  std::string dir;
  SafetensorsFile model, optimizer;
  nlohmann::json state;
};

// `path` is a run folder (its latest checkpoint) or one checkpoint folder. A sharded checkpoint
// (any world size) is consolidated in memory into this one-rank form: model weights are the fp32
// masters, the optimiser state also holds "<name>.master", the state its manifest's "state".
// Errors name what is missing or malformed. verify = false skips the SHA-256 comparison (sizes are still checked)
// and accepts checkpoints without manifest.json (written before checksums existed).
LoadedCheckpoint load_checkpoint(const std::string& path, bool with_optimizer = true, bool verify = true);

// The latest checkpoint folder of a run, if any: the one `latest` names. Without `latest` but
// with step folders (pointer deleted by hand, or lost), the newest COMPLETE step folder is
// returned (a warning is logged); if none is complete the run folder is refused with an error.
// A `latest` naming a missing or incomplete folder is an error. Cleans stale temporaries first.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

// Empty when `dir` is a complete checkpoint, else why not ("no manifest.json", "...has 10 bytes,
// the manifest says 20"). Checks sizes only, no checksums.
std::string checkpoint_incomplete_reason(const std::string& dir);

// The SHA-256 of a file as 64 lowercase hex digits (OpenSSL libcrypto).
std::string sha256_file(const std::string& path);

// ---- The machinery both layouts share: sharded checkpoints (distributed/sharded_checkpoint.h)
// write their files differently but name, commit, find, check and prune folders through these.

constexpr const char* kCheckpointFormat = "moda.checkpoint/1";                 // one rank
constexpr const char* kShardedCheckpointFormat = "moda.checkpoint.sharded/1";  // a file per rank

// The manifest entry of a written file: {"bytes": size, "sha256": hex}.
nlohmann::json file_record(const std::string& path);

// <run>/checkpoints/step-N.tmp.<pid>: where a save of `step` writes before the commit. `pid` is
// the process whose liveness keeps the folder from being cleaned up as stale: the one that will
// commit it.
std::string checkpoint_temp_folder(const std::string& run_dir, int64_t step, long pid);

// Creates checkpoint_temp_folder() empty (leftovers of interrupted saves are removed first).
std::string begin_checkpoint_folder(const std::string& run_dir, int64_t step, long pid);

// Writes `manifest` as tmp/manifest.json, the last file (its presence marks the folder complete),
// renames tmp onto <run>/checkpoints/step-N (an older step-N is swapped out, then removed),
// points `latest` at it and keeps the newest `keep` folders. On failure tmp is removed and the
// previous checkpoints and `latest` are untouched. Returns the checkpoint folder.
// Deleting the folders beyond `keep` takes seconds for big checkpoints; with `pruned` they are
// only renamed to checkpoint_temp_folder(run_dir, their step, this pid) and listed in *pruned,
// for the caller to delete off the training thread. If the process dies first, the next start
// removes them as leftovers of an interrupted save.
std::string commit_checkpoint_folder(const std::string& run_dir, int64_t step, const std::string& tmp,
                                     const nlohmann::json& manifest, int keep,
                                     std::vector<std::string>* pruned = nullptr);

// save_checkpoint() in two halves for writes that overlap training (distributed/trainer.cpp):
// writes the three files of `ckpt` into `tmp` (from begin_checkpoint_folder) and returns the
// manifest for commit_checkpoint_folder(). Touches nothing outside `tmp` and no shared state, so
// it may run on a background thread; on failure `tmp` is removed and the error rethrown.
nlohmann::json write_checkpoint_files(const std::string& tmp, int64_t step, const Checkpoint& ckpt);

// The manifest of checkpoint folder `dir` with its shape checked: a known format and a size and
// SHA-256 for every file (a one-rank checkpoint must list its three files). Errors name the
// manifest and the field.
nlohmann::json read_checkpoint_manifest(const std::string& dir);

// Compares the SHA-256 of dir/name with the manifest's; the error names the file.
void verify_checkpoint_file(const std::string& dir, const nlohmann::json& manifest, const std::string& name);

}  // namespace moda
