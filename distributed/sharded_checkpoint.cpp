#include "distributed/sharded_checkpoint.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/json_config.h"
#include "distributed/rank_agreement.h"
#include "distributed/resume_check.h"

namespace moda {
namespace fs = std::filesystem;

static constexpr const char* kShardFileFormat = "moda.shard/1";

std::string shard_file_name(int rank, int world) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "rank-%05d-of-%05d.safetensors", rank, world);
  return buf;
}

nlohmann::json group_layout(const nn::LanguageModel& model, int world) {
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& g : model.param_groups()) {
    nlohmann::json ranks = nlohmann::json::array(), params = nlohmann::json::array();
    for (int r = 0; r < world; ++r) {
      const ElementRange own = owned_range(g.numel(), world, r);
      ranks.push_back({own.lo, own.hi});
    }
    for (size_t i = 0; i < g.params.size(); ++i)
      params.push_back({{"name", g.params[i].name}, {"offset", g.offsets[i]}, {"shape", g.params[i].tensor.shape()}});
    groups.push_back({{"name", g.name},
                      {"numel", g.numel()},
                      {"shard", shard_size(g.numel(), world)},
                      {"ranks", ranks},
                      {"params", params}});
  }
  return groups;
}

// ---- save ----------------------------------------------------------------------------------

namespace {

// A file's size and SHA-256 as int64 values for an all-gather: bytes, then the 64 hex digits.
constexpr int64_t kRecordValues = 65;

Tensor encode_record(const nlohmann::json& rec) {
  std::vector<int64_t> v{rec["bytes"].get<int64_t>()};
  for (char c : rec["sha256"].get<std::string>()) v.push_back(c);
  return Tensor::from_ints(v, {kRecordValues}, DType::I64);
}

nlohmann::json decode_record(const std::vector<int64_t>& all, int rank) {
  const int64_t* v = all.data() + rank * kRecordValues;
  std::string hex;
  for (int i = 1; i < kRecordValues; ++i) hex += static_cast<char>(v[i]);
  return {{"bytes", static_cast<uint64_t>(v[0])}, {"sha256", hex}};
}

}  // namespace

nlohmann::json write_shard_file(const std::string& tmp, int rank, int world, int64_t step, const NamedTensors& shard) {
  const std::string path = (fs::path(tmp) / shard_file_name(rank, world)).string();
  save_safetensors(path, shard,
                   {{"format", kShardFileFormat},
                    {"rank", std::to_string(rank)},
                    {"world_size", std::to_string(world)},
                    {"step", std::to_string(step)}});
  return file_record(path);  // hashed as read back from disk
}

nlohmann::json sharded_manifest(int64_t step, int world, const nlohmann::json& groups, const nlohmann::json& state,
                                const nlohmann::json& files) {
  return {{"format", kShardedCheckpointFormat},
          {"step", step},
          {"world_size", world},
          {"program_version", program_version()},
          {"dtype", "F32"},
          {"kinds", shard_kinds()},
          {"groups", groups},
          {"state", state},
          {"files", files}};
}

ShardedSave begin_sharded_save(Communicator& comm, const std::string& run_dir, int64_t step,
                               const nn::LanguageModel& model, const ShardedOptimizer& optimizer,
                               const nlohmann::json& state, NamedTensors* host_copy) {
  ShardedSave save;
  save.step = step;
  save.rank = comm.rank();
  save.world = comm.world_size();
  // Rank 0 makes the temporary folder, named for its pid (the process that commits it); the
  // broadcast of that pid is also what lets the other ranks start writing into it.
  Tensor pid = Tensor::from_ints({static_cast<int64_t>(::getpid())}, {1}, DType::I64);
  if (save.rank == 0) save.tmp = begin_checkpoint_folder(run_dir, step, ::getpid());
  comm.broadcast(pid, 0);
  if (save.rank != 0) save.tmp = checkpoint_temp_folder(run_dir, step, static_cast<long>(pid.to_int_vector()[0]));
  // Host copies (training may go on while they are written): into the caller's reused buffers, or fresh.
  NamedTensors fresh;
  NamedTensors& shard = host_copy ? *host_copy : fresh;
  optimizer.export_state_into(shard);
  save.shard = shard;  // shares the tensors
  if (save.rank == 0) {
    save.groups = group_layout(model, save.world);
    save.state = state;
    save.state["adamw_step"] = optimizer.steps_taken();
  }
  return save;
}

nlohmann::json write_sharded_save(const ShardedSave& save) {
  return write_shard_file(save.tmp, save.rank, save.world, save.step, save.shard);
}

std::string commit_sharded_save(Communicator& comm, const std::string& run_dir, const ShardedSave& save,
                                const nlohmann::json& mine, int keep, std::vector<std::string>* pruned) {
  const int world = save.world;
  const std::string& tmp = save.tmp;
  Tensor records = Tensor::empty({kRecordValues * world}, DType::I64);
  comm.all_gather(records, encode_record(mine));
  std::string dir;
  if (save.rank == 0) {
    nlohmann::json files = nlohmann::json::object();
    const std::vector<int64_t> all = records.to_int_vector();
    try {
      for (int r = 0; r < world; ++r) {
        const std::string name = shard_file_name(r, world);
        const nlohmann::json rec = decode_record(all, r);
        std::error_code ec;
        const uint64_t on_disk = fs::file_size(fs::path(tmp) / name, ec);
        MODA_CHECK(!ec && on_disk == rec["bytes"].get<uint64_t>(), "sharded checkpoint: rank ", r, " wrote ",
                   rec["bytes"].get<uint64_t>(), " bytes to ", (fs::path(tmp) / name).string(), " but rank 0 sees ",
                   ec ? "no such file" : std::to_string(on_disk) + " bytes",
                   " (is the run folder on a file system every rank shares?)");
        files[name] = rec;
      }
    } catch (...) {
      fs::remove_all(tmp);
      throw;
    }
    dir = commit_checkpoint_folder(run_dir, save.step, tmp,
                                   sharded_manifest(save.step, world, save.groups, save.state, files), keep, pruned);
  }
  comm.barrier();  // every rank returns with the checkpoint committed
  return dir;
}

std::string save_sharded_checkpoint(Communicator& comm, const std::string& run_dir, int64_t step,
                                    const nn::LanguageModel& model, const ShardedOptimizer& optimizer,
                                    const nlohmann::json& state, int keep) {
  const ShardedSave save = begin_sharded_save(comm, run_dir, step, model, optimizer, state);
  // Every rank writes and hashes its own file, in parallel with the others.
  return commit_sharded_save(comm, run_dir, save, write_sharded_save(save), keep);
}

// ---- read ----------------------------------------------------------------------------------

bool is_sharded_checkpoint(const std::string& dir) {
  const fs::path m = fs::path(dir) / "manifest.json";
  if (!fs::exists(m)) return false;
  const nlohmann::json doc = parse_json_file(m.string(), "checkpoint manifest");
  return doc.is_object() && doc.contains("format") && doc["format"] == kShardedCheckpointFormat;
}

namespace {

// Typed fields of the manifest with errors that name the manifest and the field's path.
struct ManifestReader {
  std::string where;
  const nlohmann::json& at(const nlohmann::json& j, const std::string& key, const std::string& path) const {
    MODA_CHECK(j.is_object() && j.contains(key), where, ": missing field '", path, key, "'");
    return j.at(key);
  }
  int64_t integer(const nlohmann::json& j, const std::string& key, const std::string& path, int64_t min) const {
    const auto& v = at(j, key, path);
    MODA_CHECK(v.is_number_integer() && v.get<int64_t>() >= min, where, ": ", path, key, ": ", json_excerpt(v),
               " is not an integer >= ", min);
    return v.get<int64_t>();
  }
  std::string string(const nlohmann::json& j, const std::string& key, const std::string& path) const {
    const auto& v = at(j, key, path);
    MODA_CHECK(v.is_string(), where, ": ", path, key, ": ", json_excerpt(v), " is not a string");
    return v.get<std::string>();
  }
  const nlohmann::json& array(const nlohmann::json& j, const std::string& key, const std::string& path) const {
    const auto& v = at(j, key, path);
    MODA_CHECK(v.is_array(), where, ": ", path, key, " is not an array");
    return v;
  }
};

ShardedCheckpoint::Group read_group(const ManifestReader& m, const nlohmann::json& j, const std::string& path,
                                    int world) {
  ShardedCheckpoint::Group g;
  g.name = m.string(j, "name", path);
  g.numel = m.integer(j, "numel", path, 0);
  g.shard = m.integer(j, "shard", path, 0);
  const std::string at = path + "(" + g.name + ").";
  MODA_CHECK(g.shard == shard_size(g.numel, world), m.where, ": ", at, "shard: ", g.shard, " is not ceil(", g.numel,
             " / ", world, ") = ", shard_size(g.numel, world));
  const auto& ranks = m.array(j, "ranks", at);
  MODA_CHECK(ranks.size() == size_t(world), m.where, ": ", at, "ranks: ", ranks.size(), " entries for ", world,
             " ranks");
  for (int r = 0; r < world; ++r) {
    const ElementRange own = owned_range(g.numel, world, r);
    const nlohmann::json expected = {own.lo, own.hi};
    MODA_CHECK(ranks[r] == expected, m.where, ": ", at, "ranks[", r, "]: ", json_excerpt(ranks[r]), " is not [", own.lo,
               ", ", own.hi, ")");
  }
  const auto& params = m.array(j, "params", at);
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string pp = at + "params[" + std::to_string(i) + "].";
    ShardedCheckpoint::Param p;
    p.name = m.string(params[i], "name", pp);
    p.offset = m.integer(params[i], "offset", pp, 0);
    const auto& shape = m.array(params[i], "shape", pp);
    for (const auto& d : shape) {
      MODA_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, m.where, ": ", pp, "shape (", p.name,
                 "): ", json_excerpt(shape), " is not a list of sizes");
      p.shape.push_back(d.get<int64_t>());
    }
    MODA_CHECK(p.offset + shape_numel(p.shape) <= g.numel, m.where, ": ", pp, " parameter ", p.name, " at offset ",
               p.offset, " with shape ", shape_str(p.shape), " runs past the group's ", g.numel, " elements");
    g.params.push_back(std::move(p));
  }
  return g;
}

}  // namespace

ShardedCheckpoint read_sharded_checkpoint(const std::string& dir) {
  ShardedCheckpoint ck;
  ck.dir = dir;
  ck.manifest = read_checkpoint_manifest(dir);
  const ManifestReader m{(fs::path(dir) / "manifest.json").string()};
  MODA_CHECK(ck.manifest["format"] == kShardedCheckpointFormat, m.where, ": format ",
             json_excerpt(ck.manifest["format"]), " is not ", kShardedCheckpointFormat);
  ck.world_size = static_cast<int>(m.integer(ck.manifest, "world_size", "", 1));
  ck.step = m.integer(ck.manifest, "step", "", 0);
  MODA_CHECK(m.string(ck.manifest, "dtype", "") == "F32", m.where, ": dtype is not F32");
  MODA_CHECK(m.at(ck.manifest, "kinds", "") == nlohmann::json(shard_kinds()), m.where, ": kinds ",
             json_excerpt(ck.manifest["kinds"]), " are not ", nlohmann::json(shard_kinds()).dump());
  const auto& files = ck.manifest["files"];
  MODA_CHECK(files.size() == size_t(ck.world_size), m.where, ": files lists ", files.size(), " files for ",
             ck.world_size, " ranks");
  for (int r = 0; r < ck.world_size; ++r)
    MODA_CHECK(files.contains(shard_file_name(r, ck.world_size)), m.where, ": files: no entry for '",
               shard_file_name(r, ck.world_size), "' (rank ", r, ")");
  const auto& groups = m.array(ck.manifest, "groups", "");
  for (size_t i = 0; i < groups.size(); ++i)
    ck.groups.push_back(read_group(m, groups[i], "groups[" + std::to_string(i) + "]", ck.world_size));
  ck.state = m.at(ck.manifest, "state", "");
  MODA_CHECK(ck.state.is_object(), m.where, ": state is not an object");
  MODA_CHECK(m.integer(ck.state, "step", "state.", 0) == ck.step, m.where, ": state.step is not the step ", ck.step);
  m.integer(ck.state, "tokens", "state.", 0);
  m.integer(ck.state, "adamw_step", "state.", 0);
  MODA_CHECK(m.at(ck.state, "config", "state.").is_object() && m.at(ck.state, "loader", "state.").is_object(), m.where,
             ": state.config and state.loader must be objects");
  return ck;
}

int checkpoint_world_size(const std::string& dir) {
  return is_sharded_checkpoint(dir) ? read_sharded_checkpoint(dir).world_size : 1;
}

ShardReader::ShardReader(const ShardedCheckpoint& checkpoint, bool verify) : ck_(checkpoint), verify_(verify) {
  for (const auto& g : ck_.groups) groups_[g.name] = &g;
}

const SafetensorsFile& ShardReader::shard(int rank) {
  auto it = files_.find(rank);
  if (it != files_.end()) return it->second;
  const std::string name = shard_file_name(rank, ck_.world_size);
  const std::string path = (fs::path(ck_.dir) / name).string();
  if (verify_) verify_checkpoint_file(ck_.dir, ck_.manifest, name);
  SafetensorsFile f = load_safetensors(path);
  const auto meta = f.metadata.find("rank");
  MODA_CHECK(meta == f.metadata.end() || meta->second == std::to_string(rank), path, ": holds the shard of rank ",
             meta->second, ", expected rank ", rank);
  for (const auto& g : ck_.groups)
    for (const auto& kind : shard_kinds()) {
      const std::string tensor = g.name + "." + kind;
      auto t = f.tensors.find(tensor);
      MODA_CHECK(t != f.tensors.end(), path, ": tensor '", tensor, "' is missing (manifest.json lists group '", g.name,
                 "')");
      MODA_CHECK(t->second.dtype() == DType::F32 && t->second.shape() == Shape{g.shard}, path, ": tensor '", tensor,
                 "' is ", t->second.describe(), ", manifest.json says f32[", g.shard, "]");
    }
  return files_.emplace(rank, std::move(f)).first->second;
}

void ShardReader::read(const std::string& group, const std::string& kind, int64_t lo, int64_t hi, float* out) {
  auto g = groups_.find(group);
  MODA_CHECK(g != groups_.end(), ck_.dir, "/manifest.json: no parameter group '", group, "'");
  for (const SavedPiece& piece : saved_pieces(g->second->numel, ck_.world_size, {lo, hi})) {
    const Tensor& t = shard(piece.rank).tensors.at(group + "." + kind);
    std::memcpy(out + (piece.global.lo - lo), t.data<float>() + piece.offset_in_shard,
                sizeof(float) * size_t(piece.global.size()));
  }
}

std::vector<int> ShardReader::ranks_read() const {
  std::vector<int> out;
  for (const auto& [rank, file] : files_) out.push_back(rank);
  return out;
}

// ---- consolidate ---------------------------------------------------------------------------

Checkpoint consolidate_sharded(const ShardedCheckpoint& ck, bool with_optimizer, bool verify) {
  ShardReader reader(ck, verify);
  Checkpoint out;
  for (const auto& g : ck.groups) {
    std::map<std::string, std::vector<float>> full;
    for (const auto& kind : shard_kinds()) {
      if (!with_optimizer && kind != "master") continue;
      auto& v = full[kind];
      v.resize(size_t(g.numel));
      reader.read(g.name, kind, 0, g.numel, v.data());
    }
    auto cut = [&](const ShardedCheckpoint::Param& p, const std::string& kind) {
      Tensor t = Tensor::empty(p.shape, DType::F32);
      std::memcpy(t.data<float>(), full[kind].data() + p.offset, sizeof(float) * size_t(shape_numel(p.shape)));
      return t;
    };
    for (const auto& p : g.params) {
      out.model.emplace_back(p.name, cut(p, "master"));
      if (!with_optimizer) continue;
      out.optimizer.emplace_back(p.name + ".exp_avg", cut(p, "exp_avg"));
      out.optimizer.emplace_back(p.name + ".exp_avg_sq", cut(p, "exp_avg_sq"));
      out.optimizer.emplace_back(p.name + ".master", cut(p, "master"));
    }
  }
  if (with_optimizer)
    out.optimizer.emplace_back("__step__", Tensor::from_ints({ck.state["adamw_step"].get<int64_t>()}, {1}, DType::I64));
  out.state = ck.state;
  out.state.erase("adamw_step");  // in the optimiser state as "__step__", as a one-rank run keeps it
  return out;
}

LoadedCheckpoint load_sharded_as_one(const std::string& dir, bool with_optimizer, bool verify) {
  Checkpoint c = consolidate_sharded(read_sharded_checkpoint(dir), with_optimizer, verify);
  LoadedCheckpoint out;
  out.dir = dir;
  for (auto& [name, t] : c.model) out.model.tensors[name] = t;
  for (auto& [name, t] : c.optimizer) out.optimizer.tensors[name] = t;
  out.state = std::move(c.state);
  return out;
}

// ---- restore into a sharded run ------------------------------------------------------------

namespace {

// The checkpoint's groups must be this model's, parameter for parameter.
void check_layout(const ShardedCheckpoint& ck, const nn::LanguageModel& model) {
  const std::string where = (fs::path(ck.dir) / "manifest.json").string();
  const auto& groups = model.param_groups();
  MODA_CHECK(ck.groups.size() == groups.size(), where, ": ", ck.groups.size(), " parameter groups, this model has ",
             groups.size(), ": the checkpoint is of another model");
  for (size_t i = 0; i < groups.size(); ++i) {
    const auto& saved = ck.groups[i];
    const auto& now = groups[i];
    MODA_CHECK(saved.name == now.name && saved.numel == now.numel() && saved.params.size() == now.params.size(), where,
               ": group ", i, " is '", saved.name, "' of ", saved.numel, " elements in ", saved.params.size(),
               " parameters; this model's is '", now.name, "' of ", now.numel(), " in ", now.params.size());
    for (size_t k = 0; k < now.params.size(); ++k) {
      const auto& p = saved.params[k];
      MODA_CHECK(p.name == now.params[k].name && p.offset == now.offsets[k] && p.shape == now.params[k].tensor.shape(),
                 where, ": group '", now.name, "': parameter '", p.name, "' ", shape_str(p.shape), " at offset ",
                 p.offset, "; this model has '", now.params[k].name, "' ", shape_str(now.params[k].tensor.shape()),
                 " at offset ", now.offsets[k]);
    }
  }
}

// Full-vector reads from a one-rank checkpoint, placed by this model's group layout.
ShardedOptimizer::FullVectorReader one_rank_reader(const LoadedCheckpoint& ck, const nn::LanguageModel& model) {
  return [&ck, &model](const std::string& group, const std::string& kind, int64_t lo, int64_t hi, float* out) {
    const nn::ParamGroup* g = nullptr;
    for (const auto& candidate : model.param_groups())
      if (candidate.name == group) g = &candidate;
    MODA_CHECK(g, "restore: no parameter group '", group, "' in this model");
    std::fill(out, out + (hi - lo), 0.0f);  // the alignment gaps between parameters are zero
    for (size_t i = 0; i < g->params.size(); ++i) {
      const auto& p = g->params[i];
      const int64_t off = g->offsets[i], n = p.tensor.numel();
      const int64_t a = std::max(lo, off), b = std::min(hi, off + n);
      if (a >= b) continue;
      // The fp32 master when the one-rank run kept one (bf16 model), else the fp32 weight.
      const bool has_master = ck.optimizer.tensors.count(p.name + ".master") > 0;
      const bool from_model = kind == "master" && !has_master;
      const std::string name = from_model ? p.name : p.name + "." + kind;
      const auto& tensors = from_model ? ck.model.tensors : ck.optimizer.tensors;
      const char* file = from_model ? "model.safetensors" : "optimizer.safetensors";
      auto t = tensors.find(name);
      MODA_CHECK(t != tensors.end(), ck.dir, "/", file, ": tensor '", name, "' is missing");
      MODA_CHECK(t->second.shape() == p.tensor.shape(), ck.dir, "/", file, ": tensor '", name, "' has shape ",
                 shape_str(t->second.shape()), ", this model's parameter has ", shape_str(p.tensor.shape()));
      const Tensor f = t->second.to(DType::F32).contiguous();
      std::memcpy(out + (a - lo), f.data<float>() + (a - off), sizeof(float) * size_t(b - a));
    }
  };
}

}  // namespace

nlohmann::json restore_sharded(const std::string& dir, const nlohmann::json& resolved, const nn::LanguageModel& model,
                               ShardedOptimizer& optimizer) {
  const std::string why = checkpoint_incomplete_reason(dir);
  MODA_CHECK(why.empty(), "checkpoint ", dir, " is not complete: ", why);
  if (!is_sharded_checkpoint(dir)) {  // one rank's checkpoint: every rank reads it whole
    LoadedCheckpoint one = load_checkpoint(dir);
    check_resume_config(FieldReader(one.state, dir + "/state.json").raw("config"), resolved, dir);
    auto step = one.optimizer.tensors.find("__step__");
    MODA_CHECK(step != one.optimizer.tensors.end(), dir, "/optimizer.safetensors: '__step__' is missing");
    optimizer.import_state(one_rank_reader(one, model), step->second.to_int_vector().at(0));
    return one.state;
  }
  ShardedCheckpoint ck = read_sharded_checkpoint(dir);
  check_resume_config(ck.state["config"], resolved, dir);
  check_layout(ck, model);
  ShardReader reader(ck, /*verify=*/true);
  optimizer.import_state([&](const std::string& group, const std::string& kind, int64_t lo, int64_t hi,
                             float* out) { reader.read(group, kind, lo, hi, out); },
                         ck.state["adamw_step"].get<int64_t>());
  spdlog::info("restored the optimiser shard from {} file(s) of a checkpoint of {} rank(s)", reader.ranks_read().size(),
               ck.world_size);
  return ck.state;
}

}  // namespace moda
