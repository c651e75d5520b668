#include "distributed/trainer.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "autograd/attention_l0.h"
#include "autograd/graph.h"
#include "core/allocator.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_config.h"
#include "core/nvtx.h"
#include "distributed/checkpoint.h"
#if MODA_HAVE_NCCL
#include "distributed/comm/nccl_communicator.h"
#endif
#include "distributed/rank_agreement.h"
#include "distributed/resume_check.h"
#include "distributed/sharded_checkpoint.h"
#include "distributed/stop_signal.h"

namespace moda {
namespace fs = std::filesystem;

Device resolve_device(const std::string& spec, int local_rank) {
  // "auto" and "cuda" mean this rank's GPU: the node-local rank's (one rank per GPU under mpirun).
  const int gpus = cuda_device_count();
  Device d = spec == "auto"   ? (gpus > 0 ? Device::cuda(local_rank % gpus) : Device::cpu())
             : spec == "cuda" ? Device::cuda(gpus > 0 ? local_rank % gpus : 0)
                              : Device::parse(spec);
  if (d.is_cuda()) {
    MODA_CHECK(d.index < gpus, "train.device: '", spec, "' requested but ", gpus, " CUDA device(s) are visible");
    set_cuda_device(d.index);
  }
  return d;
}

namespace {

// Dense bf16 peak of the GPU for MFU (H100/H200 SXM: 989 TFLOP/s); MODA_PEAK_TFLOPS overrides.
double peak_flops() {
  if (const char* env = std::getenv("MODA_PEAK_TFLOPS")) return std::atof(env) * 1e12;
  return 989.4e12;
}

const std::string& required_run_dir(const TrainOptions& options) {
  MODA_CHECK(!options.run_dir.empty(), "train: --run-dir is required");
  return options.run_dir;
}

// Each rank runs global_batch / N sequences per step in micro-batches of train.micro_batch.
int64_t per_rank_accumulation(const TrainConfig& cfg, int world) {
  const int64_t per_rank = cfg.train.global_batch / world;
  MODA_CHECK(cfg.train.global_batch % world == 0 && per_rank % cfg.train.micro_batch == 0, "train.global_batch (",
             cfg.train.global_batch, ") must split into ", world, " ranks x whole micro-batches of train.micro_batch (",
             cfg.train.micro_batch, ")");
  return per_rank / cfg.train.micro_batch;
}

std::string checkpoint_or_none(const std::string& run_dir) { return latest_checkpoint(run_dir).value_or("(none yet)"); }

// A save that failed (disk full, read-only): what survives, as save_checkpoint promises.
Error checkpoint_not_saved(const std::exception& e, int64_t step, const std::string& run_dir) {
  return Error(std::string(e.what()) + "\n(the checkpoint of step " + std::to_string(step) +
               " was not saved; the previous one, " + checkpoint_or_none(run_dir) + ", and latest are intact)");
}

// A host copy of `t` in `dtype` that shares nothing with it: training may change `t` meanwhile.
// Pinned, because it is made once per run and filled again at every later save.
Tensor host_snapshot(const Tensor& t, DType dtype) {
  Tensor out = Tensor::empty_pinned(t.shape(), dtype);
  out.copy_(t);
  return out;
}

// Brings the host snapshot `into` up to date with `from` (in fp32 when to_f32). The tensors of the
// previous save are overwritten in place when names, shapes and dtypes match (every save of a run
// but the first): no allocation and no page faults in the stall. The previous write has been
// joined before (save() commits it first), so nothing reads them meanwhile.
void refresh_snapshot(NamedTensors& into, const NamedTensors& from, bool to_f32) {
  bool reuse = into.size() == from.size();
  for (size_t i = 0; reuse && i < from.size(); ++i) {
    const Tensor &a = into[i].second, &b = from[i].second;
    reuse = into[i].first == from[i].first && a.shape() == b.shape() && a.dtype() == (to_f32 ? DType::F32 : b.dtype());
  }
  if (reuse) {
    for (size_t i = 0; i < from.size(); ++i) into[i].second.copy_(from[i].second);
    return;
  }
  into.clear();
  for (const auto& [name, t] : from) into.emplace_back(name, host_snapshot(t, to_f32 ? DType::F32 : t.dtype()));
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Trainer::Trainer(const TrainConfig& config, const TrainOptions& options, std::unique_ptr<Communicator> comm)
    : cfg_(config),
      opts_(options),
      comm_(std::move(comm)),
      accumulation_(per_rank_accumulation(config, comm_->world_size())),
      device_(resolve_device(config.train.device, comm_->local_rank())),
      dtype_(device_.is_cuda() ? DType::BF16 : DType::F32),
      schedule_{cfg_.optim.lr, cfg_.optim.min_lr, cfg_.optim.warmup_steps, cfg_.train.steps},
      loader_(make_loader()),
      metrics_(required_run_dir(opts_)) {
  comm_->set_timeout(cfg_.train.collective_timeout_s);  // before the first collective (docs/distributed.md, "Faults")
  if (is_main_rank()) lock_.emplace(opts_.run_dir);
  check_same_config_on_every_rank(*comm_, cfg_.resolved);
  // Every validation set is read once now, so a bad one fails before training, not after it.
  check_eval_sets(cfg_.data.val, cfg_.data.seq_len, cfg_.train.micro_batch, cfg_.model.vocab_size);
  const Shape batch{cfg_.train.micro_batch, cfg_.data.seq_len};
  inputs_ = Tensor::empty(batch, DType::I32);
  targets_ = Tensor::empty(batch, DType::I32);
  // The run folder is judged before the model is built: a refused folder (checkpoints without
  // --resume) fails in a second, not after a 700M model was built and initialised.
  resume_from_ = find_checkpoint_to_resume();
  model_ = make_model();
  optimizer_ = make_optimizer();
  shard_model();
  start_or_resume();
  // Pinning the snapshot's host memory takes seconds on a GPU host (about 6 s for the 700M
  // config's 11 GB): do it before the first step instead of inside the first checkpoint's stall.
  // Only for async GPU runs: on the CPU nothing is pinned, and the buffers would only raise the
  // run's peak before the first save.
  if (cfg_.train.async_checkpoint && device_.is_cuda()) prepare_snapshot();
}

void Trainer::prepare_snapshot() {
  const auto start = std::chrono::steady_clock::now();
  refresh_host_snapshot();
  NamedTensors buffers = shard_snapshot_;
  if (snapshot_) {
    buffers.insert(buffers.end(), snapshot_->model.begin(), snapshot_->model.end());
    buffers.insert(buffers.end(), snapshot_->optimizer.begin(), snapshot_->optimizer.end());
  }
  size_t bytes = 0;
  for (const auto& [name, t] : buffers) bytes += t.nbytes();
  const bool pinned = !buffers.empty() && buffers.front().second.storage()->pinned();
  spdlog::info("checkpoint snapshot buffers: {:.1f} MiB of {} host memory, made in {:.2f} s", bytes / 1048576.0,
               pinned ? "pinned" : "pageable", seconds_since(start));
}

void Trainer::refresh_host_snapshot() {
  if (sharded_) {
    sharded_->export_state_into(shard_snapshot_);
    return;
  }
  if (!snapshot_) snapshot_ = std::make_shared<Checkpoint>();
  refresh_snapshot(snapshot_->model, model_->state_dict(), true);
  refresh_snapshot(snapshot_->optimizer, optimizer_->state(), false);
}

std::unique_ptr<nn::LanguageModel> Trainer::make_model() const {
  // Every rank draws the same initial weights from the seed (device-independent Philox).
  spdlog::info("device {}, compute dtype {}", device_.str(), dtype_name(dtype_));
  auto model = std::make_unique<nn::LanguageModel>(cfg_.model, nn::ModelInit{cfg_.train.seed, device_, dtype_});
  model->set_activation_checkpointing(cfg_.train.activation_checkpointing == "block");
  // Micro-batches add into the full gradient: in fp32, not in the bf16 compute dtype, whose 8-bit
  // mantissa loses the small terms of a long sum (docs/distributed.md, "Reduce").
  if (accumulation_ > 1 && dtype_ == DType::BF16)
    for (auto& group : model->param_groups()) group.grad_dtype = DType::F32;
  ops::set_attention_l0(ops::parse_attention_l0(cfg_.train.attention_l0, "train.attention_l0"), device_);
  return model;
}

bool Trainer::wants_sharding() const { return comm_->world_size() > 1 || cfg_.parallel.sharding == "full"; }

std::unique_ptr<nn::AdamW> Trainer::make_optimizer() const {
  if (wants_sharding()) return nullptr;  // shard_model() builds the sharded one
  std::vector<nn::OptimParam> params;
  for (const auto& p : model_->parameters()) params.push_back({p.name, p.tensor, p.decay});
  AdamWParams hyper;
  hyper.beta1 = cfg_.optim.beta1;
  hyper.beta2 = cfg_.optim.beta2;
  hyper.eps = cfg_.optim.eps;
  hyper.weight_decay = cfg_.optim.weight_decay;
  return std::make_unique<nn::AdamW>(params, hyper);
}

data::TrainLoader Trainer::make_loader() const {
  data::LoaderOptions o;
  o.shards = cfg_.data.train;
  o.batch_size = cfg_.train.micro_batch;
  o.seq_len = cfg_.data.seq_len;
  o.seed = cfg_.train.seed;
  o.vocab_size = static_cast<size_t>(cfg_.model.vocab_size);
  o.rank = comm_->rank();
  o.world_size = comm_->world_size();
  return data::TrainLoader(o);
}

void Trainer::shard_model() {
  if (!wants_sharding()) return;  // a world of one keeps the model whole
  const int world = comm_->world_size();
#if MODA_HAVE_NCCL
  if (device_.is_cuda()) comm_ = make_nccl_communicator(std::move(comm_), device_.index);
#endif
  MODA_CHECK(device_.is_cpu() || comm_->backend() != "mpi", "train: ", world, " ranks on ", device_.str(),
             " need the NCCL communicator (the MPI one moves CPU tensors); build with NCCL or train on CPU");
  MODA_CHECK(cfg_.parallel.reduce_dtype == "fp32" || dtype_ == DType::BF16,
             "parallel.reduce_dtype: \"bf16\" needs a bf16 model (CUDA); on ", device_.str(), " the model computes in ",
             dtype_name(dtype_));
  AdamWParams hyper;
  hyper.beta1 = cfg_.optim.beta1;
  hyper.beta2 = cfg_.optim.beta2;
  hyper.eps = cfg_.optim.eps;
  hyper.weight_decay = cfg_.optim.weight_decay;
  const DType reduce = cfg_.parallel.reduce_dtype == "fp32" ? DType::F32 : DType::BF16;
  sharded_ = std::make_unique<ShardedOptimizer>(*model_, *comm_, hyper, reduce);
  sharding_ = std::make_unique<ParameterSharding>(*model_, *sharded_, cfg_.parallel.reshard_after_forward);
  spdlog::info(
      "fully sharded over {} rank(s) ({}, gradients reduced in {}): {:.2f} MiB of shards per rank "
      "(unsharded {:.2f} MiB)",
      world, sharding_mode(), cfg_.parallel.reduce_dtype, sharded_->shard_state_bytes() / 1048576.0,
      sharded_->unsharded_state_bytes() / 1048576.0);
}

std::string Trainer::sharding_mode() const {
  if (!sharding_) return "none";
  return cfg_.parallel.reshard_after_forward ? "zero3" : "zero2";
}

std::optional<std::string> Trainer::find_checkpoint_to_resume() {
  // Rank 0 looks first: it alone removes the leftovers of interrupted saves.
  std::optional<std::string> latest;
  if (is_main_rank()) latest = latest_checkpoint(opts_.run_dir);
  comm_->barrier();
  if (!is_main_rank()) latest = latest_checkpoint(opts_.run_dir);
  MODA_CHECK(opts_.resume || !latest, "run folder '", opts_.run_dir, "' already holds checkpoints (", *latest,
             "); pass --resume to continue it or choose another --run-dir");
  return latest;
}

void Trainer::start_or_resume() {
  const std::optional<std::string>& latest = resume_from_;
  if (device_.is_cuda()) cuda_allocator::reset_peak(device_.index);
  if (opts_.resume && latest) {  // either layout, saved at any world size (distributed/sharded_checkpoint.h)
    nlohmann::json saved;
    if (sharded_) {
      saved = restore_sharded(*latest, cfg_.resolved, *model_, *sharded_);
      sharding_->release_all();  // every group is gathered again from the restored masters
    } else {
      LoadedCheckpoint ck = load_checkpoint(*latest);  // a sharded one is consolidated in memory
      check_resume_config(FieldReader(ck.state, ck.dir + "/state.json").raw("config"), cfg_.resolved, ck.dir);
      model_->load_state_dict(ck.model.tensors);
      optimizer_->load_state(ck.optimizer);
      saved = ck.state;
    }
    FieldReader state(saved, *latest + " (trainer state)");
    const uint64_t skipped = loader_.load_state(state.raw("loader"));
    step_ = state.require<int64_t>("step");
    tokens_seen_ = state.require<int64_t>("tokens");
    const int saved_world = checkpoint_world_size(*latest);
    // A checkpoint of another world size is not this run's: the next save (--stop-after at the
    // step resumed from included) writes one at this world size.
    last_saved_step_ = saved_world == comm_->world_size() ? step_ : -1;
    spdlog::info("resumed from {} at step {} (saved by {} rank(s), now {}{})", *latest, step_, saved_world,
                 comm_->world_size(),
                 skipped ? fmt::format("; {} training windows skipped to align the data position", skipped) : "");
    if (is_main_rank()) metrics_.drop_after(step_);
  } else if (is_main_rank()) {
    write_file_atomically((fs::path(opts_.run_dir) / "config.json").string(),
                          [&](std::ostream& out) { out << cfg_.resolved.dump(2) << "\n"; });
    metrics_.start_new();
  }
  start_step_ = step_;
  const auto counts = nn::count_parameters(cfg_.model);
  spdlog::info("model {}: {:.2f}M parameters ({:.2f}M non-embedding); world size {} ({} communicator)",
               nn::variant_name(cfg_.model.variant), counts.total / 1e6, counts.non_embedding / 1e6,
               comm_->world_size(), comm_->backend());
}

double Trainer::train_step() {
  const int64_t accum = accumulation_;
  // Each rank's gradient is its share of the global mean: the sum over ranks is the mean.
  const double seed = 1.0 / static_cast<double>(accum * comm_->world_size());
  if (!sharding_) model_->zero_grad();  // sharded: each group's gradient is zeroed on first use
  double loss_sum = 0;
  for (int64_t micro = 0; micro < accum; ++micro) {
    if (sharding_) sharding_->begin_micro_batch(micro + 1 == accum);
    loader_.next(inputs_.data<int32_t>(), targets_.data<int32_t>());
    Tensor loss = model_->forward(inputs_.to(device_), targets_.to(device_));
    const double value = loss.item();
    MODA_CHECK(std::isfinite(value), "non-finite loss (", value, ") at step ", step_, ", micro-batch ", micro,
               "; training stopped. The last good checkpoint ", last_good_checkpoint(), " is intact");
    loss_sum += value / static_cast<double>(accum);
    loss.backward(Tensor::full({1}, seed, loss.dtype(), device_));
    if (sharding_) sharding_->end_backward();  // gradients reduce-scattered during the last backward
  }
  last_grad_norm_ = sharded_ ? sharded_->grad_norm() : optimizer_->grad_norm();
  MODA_CHECK(std::isfinite(last_grad_norm_), "non-finite gradient norm at step ", step_,
             "; training stopped. The last good checkpoint ", last_good_checkpoint(), " is intact");
  const double clip = cfg_.optim.grad_clip > 0 ? nn::clip_coefficient(last_grad_norm_, cfg_.optim.grad_clip) : 1.0;
  if (sharded_)
    sharded_->step(schedule_.at(step_), clip);
  else
    optimizer_->step(schedule_.at(step_), clip);
  const int64_t tokens = cfg_.train.global_batch * cfg_.data.seq_len;
  tokens_seen_ += tokens;
  throughput_.add_tokens(tokens);
  return mean_over_ranks(loss_sum);
}

double Trainer::mean_over_ranks(double value) const {
  if (comm_->world_size() == 1) return value;
  Tensor t = Tensor::full({1}, value, DType::F64);
  comm_->all_reduce_sum(t);
  return t.item() / comm_->world_size();
}

bool Trainer::any_rank_stopping(bool local) {
  const bool pending = pending_.has_value(), written = pending && pending_->write->finished();
  if (comm_->world_size() == 1) {
    checkpoint_written_ = written;
    return local;
  }
  // Every rank stops at the same step. While a checkpoint write is pending the same all-reduce
  // also counts the ranks whose write has not finished: all commit it at the same step.
  Tensor t = Tensor::full({pending ? 2 : 1}, local ? 1.0 : 0.0, DType::F64);
  if (pending) t.data<double>()[1] = written ? 0.0 : 1.0;
  comm_->all_reduce_sum(t);
  const double* v = t.data<double>();
  checkpoint_written_ = pending && v[1] == 0;
  return v[0] > 0;
}

void Trainer::log_step(double loss, double grad_norm, double lr) {
  const double tps = throughput_.take();
  const auto flops = nn::training_flops_per_token(cfg_.model, cfg_.data.seq_len);
  nlohmann::json rec = {{"step", step_},
                        {"loss", loss},
                        {"lr", lr},
                        {"grad_norm", grad_norm},
                        {"tokens", tokens_seen_},
                        {"tokens_per_s", tps},
                        {"world_size", comm_->world_size()},
                        {"sharding", sharding_mode()}};
  if (sharding_) {
    // What this rank spends on parameters, gradients and optimiser state: its shards, and the
    // most gathered (full) parameters and gradients it held at once during the step.
    rec["shard_state_mib_per_rank"] = sharded_->shard_state_bytes() / 1048576.0;
    rec["gathered_peak_mib_per_rank"] = sharding_->peak_resident_bytes() / 1048576.0;
    sharding_->reset_peak();
  }
  std::string extra;
  if (sharding_)
    extra = fmt::format(" | {} x{} | {:.1f}+{:.1f} MiB/rank", sharding_mode(), comm_->world_size(),
                        rec["shard_state_mib_per_rank"].get<double>(), rec["gathered_peak_mib_per_rank"].get<double>());
  if (device_.is_cuda()) {
    track_memory();
    // MFU in the PaLM convention (docs/training.md): attention over all T keys. mfu_causal counts
    // only the keys the causal kernels compute.
    rec["mfu"] = tps * flops.palm_per_token() / peak_flops();
    rec["mfu_causal"] = tps * flops.causal_per_token() / peak_flops();
    rec["peak_reserved_gib"] = summary_.peak_reserved_bytes / double(1ull << 30);
    extra += fmt::format(" | mfu {:.1f}% | {:.1f} GiB", 100 * rec["mfu"].get<double>(),
                         rec["peak_reserved_gib"].get<double>());
  }
  if (is_main_rank()) metrics_.append(rec);
  const double done = static_cast<double>(step_ - start_step_);
  const double eta = done > 0 ? elapsed_seconds_ / done * static_cast<double>(cfg_.train.steps - step_) : 0;
  spdlog::info("step {:>6}/{} | loss {:.4f} | lr {:.3e} | grad norm {:.3f} | {:.0f} tok/s{} | eta {}", step_,
               cfg_.train.steps, loss, lr, grad_norm, tps, extra, format_duration(eta));
}

void Trainer::track_memory() {
  const AllocatorStats st = cuda_allocator::stats(device_.index);
  summary_.peak_allocated_bytes = std::max(summary_.peak_allocated_bytes, st.peak_allocated);
  summary_.peak_reserved_bytes = std::max(summary_.peak_reserved_bytes, st.peak_reserved);
  summary_.peak_device_used_bytes = std::max(summary_.peak_device_used_bytes, cuda_device_memory_used(device_.index));
}

bool Trainer::eval_due(bool last) const {
  return !cfg_.data.val.empty() && (last || (cfg_.train.eval_every > 0 && step_ % cfg_.train.eval_every == 0));
}

bool Trainer::maybe_eval(bool last) {
  if (!eval_due(last)) return false;
  EvalReport r;
  try {
    r = evaluate(*model_, cfg_.data.val, cfg_.data.seq_len, cfg_.train.micro_batch,
                 last ? 0 : cfg_.train.eval_max_batches, device_, comm_.get());
  } catch (const std::exception& e) {
    // An evaluation that fails (a set changed on disk, out of memory) must not cost the training
    // state: save it, then report the failure.
    if (last_saved_step_ != step_ && !sharded_) {
      save();
      finish_checkpoint();  // committed before the message names it
    }
    throw Error(std::string(e.what()) + "\n(evaluation at step " + std::to_string(step_) +
                " failed; the training state was saved in " + checkpoint_or_none(opts_.run_dir) + ")");
  }
  if (sharding_) sharding_->release_all();  // evaluation gathered the groups it read
  if (is_main_rank()) metrics_.append({{"step", step_}, {"eval", r.to_json()}});
  spdlog::info("eval at step {}: average loss {:.4f}, perplexity {:.3f}", step_, r.average.loss, r.average.ppl());
  summary_.eval = r;
  return true;
}

void Trainer::maybe_checkpoint(bool last, bool stopping) {
  const bool due = cfg_.train.checkpoint_every > 0 && step_ % cfg_.train.checkpoint_every == 0;
  if (!(due || last || stopping) || last_saved_step_ == step_) return;
  save();
}

void Trainer::save() {
  finish_checkpoint();  // at most one write in flight: the previous one is committed first
  const nlohmann::json state = {
      {"step", step_}, {"tokens", tokens_seen_}, {"loader", loader_.state()}, {"config", cfg_.resolved}};
  // The stall: a host copy of everything the checkpoint holds (device -> host for a GPU run).
  const auto start = std::chrono::steady_clock::now();
  PendingCheckpoint p;
  p.step = step_;
  std::function<nlohmann::json()> work;
  try {
    if (sharded_) {  // collective: rank 0 makes the folder, every rank copies its shard
      p.sharded = std::make_shared<ShardedSave>(
          begin_sharded_save(*comm_, opts_.run_dir, step_, *model_, *sharded_, state, &shard_snapshot_));
      work = [snapshot = p.sharded] { return write_sharded_save(*snapshot); };
    } else {
      refresh_host_snapshot();
      snapshot_->state = state;
      auto ck = snapshot_;
      p.tmp = begin_checkpoint_folder(opts_.run_dir, step_, ::getpid());
      work = [ck, tmp = p.tmp, step = step_] { return write_checkpoint_files(tmp, step, *ck); };
    }
  } catch (const std::exception& e) {
    throw checkpoint_not_saved(e, step_, opts_.run_dir);
  }
  p.snapshot_s = seconds_since(start);
  // async: the files are written, fsynced and hashed on a thread while training goes on; the
  // commit (rank 0's checks, manifest, rename, `latest`) runs on this thread once every rank's
  // write finished (any_rank_stopping) or at the next save, evaluation or the end of fit().
  p.write = std::make_unique<BackgroundWrite>(std::move(work), cfg_.train.async_checkpoint);
  pending_ = std::move(p);
  last_saved_step_ = step_;
  if (!cfg_.train.async_checkpoint) finish_checkpoint();
}

void Trainer::finish_checkpoint() {
  if (!pending_) return;
  PendingCheckpoint p = std::move(*pending_);
  pending_.reset();
  checkpoint_written_ = false;
  const int keep = static_cast<int>(cfg_.train.keep_checkpoints);
  const auto start = std::chrono::steady_clock::now();
  std::string dir;
  std::vector<std::string> pruned;
  try {
    const nlohmann::json written = p.write->join();  // waits if the write is still running
    finish_pruning();                                // the previous commit's deletions
    dir = p.sharded ? commit_sharded_save(*comm_, opts_.run_dir, *p.sharded, written, keep, &pruned)
                    : commit_checkpoint_folder(opts_.run_dir, p.step, p.tmp, written, keep, &pruned);
  } catch (const std::exception& e) {  // disk full, read-only: say what survives (save_checkpoint's promise)
    throw checkpoint_not_saved(e, p.step, opts_.run_dir);
  }
  const bool async = cfg_.train.async_checkpoint;
  const double commit_s = seconds_since(start), write_s = p.write->seconds();
  // Deleting the checkpoints beyond keep_checkpoints (seconds for big ones) overlaps training.
  if (!pruned.empty())
    pruning_ = std::make_unique<BackgroundWrite>(
        [pruned] {
          for (const std::string& dir : pruned) fs::remove_all(dir);
          return nlohmann::json();
        },
        /*background=*/true);
  // What training waited for: the snapshot and the commit (which includes waiting for a write
  // that had not finished), plus, when synchronous, the write itself.
  const double stall_s = p.snapshot_s + commit_s + (async ? 0.0 : write_s);
  const std::string name = dir.empty() ? "step-" + std::to_string(p.step) : dir;
  if (async)
    spdlog::info("checkpoint {}: {:.3f} s stall, written in {:.3f} s in the background (committed after step {})", name,
                 stall_s, write_s, step_);
  else
    spdlog::info("checkpoint {}: {:.3f} s stall (written synchronously in {:.3f} s)", name, stall_s, write_s);
  if (is_main_rank())
    metrics_.append({{"step", p.step},
                     {"checkpoint",
                      {{"stall_s", stall_s},
                       {"write_s", write_s},
                       {"snapshot_s", p.snapshot_s},
                       {"commit_s", commit_s},
                       {"async", async},
                       {"committed_after_step", step_}}}});
}

std::string Trainer::last_good_checkpoint() {
  // One rank commits a pending write first, as a synchronous save would have committed it (no
  // collective involved); a sharded run leaves it to fit()'s error path, which discards it: the
  // other ranks may never reach a commit.
  if (pending_ && !sharded_) {
    try {
      finish_checkpoint();
    } catch (const std::exception& e) {
      spdlog::warn("{}", e.what());
    }
  }
  return checkpoint_or_none(opts_.run_dir);
}

void Trainer::finish_pruning() {
  if (!pruning_) return;
  try {
    pruning_->join();
  } catch (const std::exception& e) {  // the checkpoints are safe; only disk space is at stake
    spdlog::warn("could not delete an old checkpoint: {} (delete it by hand)", e.what());
  }
  pruning_.reset();
}

void Trainer::abandon_checkpoint() {
  if (!pending_) return;
  PendingCheckpoint p = std::move(*pending_);
  pending_.reset();
  checkpoint_written_ = false;
  try {
    p.write->join();
  } catch (const std::exception&) {  // the error that ends training is the one being reported
  }
  if (!p.tmp.empty()) {  // one rank: nothing of it is left; a sharded temporary goes at the next start
    std::error_code ec;
    fs::remove_all(p.tmp, ec);
  }
  spdlog::warn(
      "the checkpoint of step {} was still being written when training failed: discarded, the previous one "
      "and latest are untouched",
      p.step);
}

TrainSummary Trainer::fit() {
  StopSignals signals;
  const auto run_start = std::chrono::steady_clock::now();
  if (opts_.stop_after > 0 && step_ >= opts_.stop_after) {  // resumed at or past --stop-after: nothing to train
    maybe_checkpoint(false, true);  // writes it at this world size when the checkpoint had another
    finish_checkpoint();
    finish_pruning();
    summary_.steps = step_;
    return summary_;
  }
  try {
    while (step_ < cfg_.train.steps) {
      ++step_;
      comm_->set_step(step_);  // named in a collective timeout or MPI error report
      const double lr = schedule_.at(step_);
      {
        NvtxRange range("step " + std::to_string(step_));  // `ncu --nvtx --nvtx-include "step 3/"`
        summary_.last_loss = train_step();
      }
      elapsed_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
      const bool last = step_ == cfg_.train.steps;
      const bool stopping =
          any_rank_stopping((opts_.stop_after > 0 && step_ == opts_.stop_after) || StopSignals::requested());
      if (step_ % cfg_.train.log_every == 0 || last || stopping) log_step(summary_.last_loss, last_grad_norm_, lr);
      if (device_.is_cuda()) track_memory();         // the step's peak, before checkpoint or evaluation allocate
      throughput_.pause();                           // evaluation and checkpoints are not training throughput
      if (checkpoint_written_) finish_checkpoint();  // every rank's write is done: commit it (collective)
      // The checkpoint comes before the evaluation of the same step: a failing evaluation (a bad
      // set, an OOM) must not cost the training state, so a pending write is committed first.
      maybe_checkpoint(last, stopping);
      // A stop skips periodic evaluations, but not the final one: at the last step the run is
      // ending anyway, and without that evaluation it would be left "final checkpoint without the
      // final evaluation", which --resume cannot complete (a sweep stopped at that moment hit it).
      if ((!stopping || last) && eval_due(last)) {
        finish_checkpoint();
        maybe_eval(last);
      }
      if (device_.is_cuda()) cuda_allocator::reset_peak(device_.index);  // their allocations are not the step's
      throughput_.resume();
      if (stopping) {
        summary_.stopped_by_signal = StopSignals::requested();
        if (summary_.stopped_by_signal)
          spdlog::warn("stopped by signal {} after step {}; resume with --resume", StopSignals::signal_number(), step_);
        break;
      }
    }
    finish_checkpoint();  // the final or stop checkpoint is complete before fit() returns
    finish_pruning();     // and only keep_checkpoints of them are left
  } catch (...) {
    abandon_checkpoint();  // an error ends training: a pending write is discarded, `latest` unchanged
    finish_pruning();
    throw;
  }
  summary_.steps = step_;
  if (device_.is_cuda()) {
    spdlog::info(
        "peak GPU memory over training steps: {:.2f} GiB live, {:.2f} GiB reserved by the allocator, "
        "{:.2f} GiB used on the device",
        summary_.peak_allocated_bytes / double(1ull << 30), summary_.peak_reserved_bytes / double(1ull << 30),
        summary_.peak_device_used_bytes / double(1ull << 30));
  }
  return summary_;
}

TrainSummary train(const TrainConfig& config, const TrainOptions& options, std::unique_ptr<Communicator> comm) {
  return Trainer(config, options, std::move(comm)).fit();
}

}  // namespace moda
