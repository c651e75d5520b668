#include "distributed/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "autograd/graph.h"
#include "core/allocator.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "data/loader.h"
#include "distributed/checkpoint.h"
#include "nn/language_model.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"

namespace moda {
namespace fs = std::filesystem;

Device resolve_device(const std::string& spec) {
  if (spec == "auto") return cuda_available() ? Device::cuda(0) : Device::cpu();
  Device d = Device::parse(spec);
  if (d.is_cuda())
    MODA_CHECK(d.index < cuda_device_count(), "train.device: '", spec, "' requested but ", cuda_device_count(),
               " CUDA device(s) are visible");
  return d;
}

namespace {

// Dense bf16 peak of the GPU for MFU (H100/H200 SXM: 989 TFLOP/s); MODA_PEAK_TFLOPS overrides.
double peak_flops() {
  if (const char* env = std::getenv("MODA_PEAK_TFLOPS")) return std::atof(env) * 1e12;
  return 989.4e12;
}

void append_metrics(const std::string& run_dir, const nlohmann::json& record) {
  std::ofstream out(fs::path(run_dir) / "metrics.jsonl", std::ios::app);
  out << record.dump() << "\n";
}

// On resume, records the interrupted run wrote after its last checkpoint would be repeated: drop them.
void drop_metrics_after(const std::string& run_dir, int64_t step) {
  fs::path path = fs::path(run_dir) / "metrics.jsonl";
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t(0)) > step) continue;
    } catch (const std::exception&) {
      continue;  // a line cut short by the interruption
    }
    kept += line + "\n";
  }
  write_file_atomically(path.string(), [&](std::ostream& out) { out << kept; });
}

std::string format_eta(double seconds) {
  int s = static_cast<int>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

}  // namespace

TrainSummary train(const TrainConfig& cfg, const TrainOptions& opts) {
  MODA_CHECK(!opts.run_dir.empty(), "train: --run-dir is required");
  fs::create_directories(opts.run_dir);
  auto latest = latest_checkpoint(opts.run_dir);
  MODA_CHECK(opts.resume || !latest, "run folder '", opts.run_dir, "' already holds checkpoints (", *latest,
             "); pass --resume to continue it or choose another --run-dir");

  const Device device = resolve_device(cfg.train.device);
  const DType dtype = device.is_cuda() ? DType::BF16 : DType::F32;
  spdlog::info("device {}, compute dtype {}", device.str(), dtype_name(dtype));
  if (device.is_cuda()) cuda_allocator::reset_peak(device.index);

  auto model = std::make_unique<nn::LanguageModel>(cfg.model, nn::ModelInit{cfg.train.seed, device, dtype});
  std::vector<nn::OptimParam> params;
  for (const auto& p : model->parameters()) params.push_back({p.name, p.tensor, p.decay});
  AdamWParams hyper;
  hyper.beta1 = cfg.optim.beta1;
  hyper.beta2 = cfg.optim.beta2;
  hyper.eps = cfg.optim.eps;
  hyper.weight_decay = cfg.optim.weight_decay;
  nn::AdamW optimizer(params, hyper);
  nn::LrSchedule schedule{cfg.optim.lr, cfg.optim.min_lr, cfg.optim.warmup_steps, cfg.train.steps};
  data::LoaderOptions loader_opts;
  loader_opts.shards = cfg.data.train;
  loader_opts.batch_size = cfg.train.micro_batch;
  loader_opts.seq_len = cfg.data.seq_len;
  loader_opts.seed = cfg.train.seed;
  loader_opts.vocab_size = static_cast<size_t>(cfg.model.vocab_size);
  data::TrainLoader loader(loader_opts);
  const Shape batch_shape{cfg.train.micro_batch, cfg.data.seq_len};
  Tensor inputs = Tensor::empty(batch_shape, DType::I32), targets = Tensor::empty(batch_shape, DType::I32);

  int64_t step = 0, tokens_seen = 0;
  if (opts.resume && latest) {
    LoadedCheckpoint ck = load_checkpoint(opts.run_dir);
    model->load_state_dict(ck.model.tensors);
    optimizer.load_state(ck.optimizer);
    loader.load_state(ck.state.at("loader"));
    step = ck.state.at("step").get<int64_t>();
    tokens_seen = ck.state.at("tokens").get<int64_t>();
    spdlog::info("resumed from {} at step {}", ck.dir, step);
    drop_metrics_after(opts.run_dir, step);
  } else {
    write_file_atomically((fs::path(opts.run_dir) / "config.json").string(),
                          [&](std::ostream& out) { out << cfg.resolved.dump(2) << "\n"; });
    std::ofstream(fs::path(opts.run_dir) / "metrics.jsonl", std::ios::trunc);
  }

  auto counts = nn::count_parameters(cfg.model);
  auto flops = nn::training_flops_per_token(cfg.model, cfg.data.seq_len);
  const double flops_per_token = flops.per_token() + flops.lm_head;
  spdlog::info("model {}: {:.2f}M parameters ({:.2f}M non-embedding), {:.3g} training FLOPs/token",
               nn::variant_name(cfg.model.variant), counts.total / 1e6, counts.non_embedding / 1e6, flops_per_token);

  const int64_t accum = cfg.accumulation_steps();
  const int64_t tokens_per_step = cfg.train.global_batch * cfg.data.seq_len;
  auto save = [&](int64_t at_step) {
    Checkpoint ck;
    for (auto& [name, t] : model->state_dict()) ck.model.emplace_back(name, t.to(DType::F32));
    ck.optimizer = optimizer.state();
    ck.state = {{"step", at_step}, {"tokens", tokens_seen}, {"loader", loader.state()}, {"config", cfg.resolved}};
    std::string dir = save_checkpoint(opts.run_dir, at_step, ck, static_cast<int>(cfg.train.keep_checkpoints));
    spdlog::info("checkpoint {}", dir);
  };

  TrainSummary summary;
  auto window_start = std::chrono::steady_clock::now();
  auto run_start = window_start;
  int64_t window_tokens = 0, start_step = step;
  while (step < cfg.train.steps) {
    ++step;
    model->zero_grad();
    double loss_sum = 0;
    for (int64_t micro = 0; micro < accum; ++micro) {
      loader.next(inputs.data<int32_t>(), targets.data<int32_t>());
      Tensor loss = model->forward(inputs.to(device), targets.to(device));
      double value = loss.item();
      loss_sum += value / static_cast<double>(accum);
      MODA_CHECK(std::isfinite(value), "non-finite loss (", value, ") at step ", step, ", micro-batch ", micro,
                 "; training stopped. The last good checkpoint ",
                 latest_checkpoint(opts.run_dir).value_or("(none yet)"), " is intact");
      loss.backward(Tensor::full({1}, 1.0 / static_cast<double>(accum), loss.dtype(), device));
    }
    double norm = optimizer.grad_norm();
    MODA_CHECK(std::isfinite(norm), "non-finite gradient norm at step ", step, "; training stopped. The last good ",
               "checkpoint ", latest_checkpoint(opts.run_dir).value_or("(none yet)"), " is intact");
    double clip = cfg.optim.grad_clip > 0 ? nn::clip_coefficient(norm, cfg.optim.grad_clip) : 1.0;
    double lr = schedule.at(step);
    optimizer.step(lr, clip);
    tokens_seen += tokens_per_step;
    window_tokens += tokens_per_step;
    summary.last_loss = loss_sum;

    if (step % cfg.train.log_every == 0 || step == cfg.train.steps) {
      auto now = std::chrono::steady_clock::now();
      double secs = std::chrono::duration<double>(now - window_start).count();
      double tps = window_tokens / std::max(secs, 1e-9);
      double elapsed = std::chrono::duration<double>(now - run_start).count();
      double eta = elapsed / static_cast<double>(step - start_step) * static_cast<double>(cfg.train.steps - step);
      nlohmann::json rec = {{"step", step},      {"loss", loss_sum},      {"lr", lr},
                            {"grad_norm", norm}, {"tokens", tokens_seen}, {"tokens_per_s", tps}};
      std::string mfu;
      if (device.is_cuda()) {
        double m = tps * flops_per_token / peak_flops();
        rec["mfu"] = m;
        mfu = fmt::format(" | mfu {:.1f}%", 100 * m);
      }
      append_metrics(opts.run_dir, rec);
      spdlog::info("step {:>6}/{} | loss {:.4f} | lr {:.3e} | grad norm {:.3f} | {:.0f} tok/s{} | eta {}", step,
                   cfg.train.steps, loss_sum, lr, norm, tps, mfu, format_eta(eta));
      window_start = now;
      window_tokens = 0;
    }
    bool last = step == cfg.train.steps;
    if (!cfg.data.val.empty() && ((cfg.train.eval_every > 0 && step % cfg.train.eval_every == 0) || last)) {
      EvalReport r = evaluate(*model, cfg.data.val, cfg.data.seq_len, cfg.train.micro_batch,
                              last ? 0 : cfg.train.eval_max_batches, device);
      append_metrics(opts.run_dir, {{"step", step}, {"eval", r.to_json()}});
      spdlog::info("eval at step {}: average loss {:.4f}, perplexity {:.3f}", step, r.average.loss, r.average.ppl());
      summary.eval = r;
      window_start = std::chrono::steady_clock::now();  // evaluation time is not training throughput
    }
    bool stopping = opts.stop_after > 0 && step == opts.stop_after;
    if ((cfg.train.checkpoint_every > 0 && step % cfg.train.checkpoint_every == 0) || last || stopping) save(step);
    if (stopping) break;
  }
  summary.steps = step;
  if (device.is_cuda()) {
    summary.peak_device_bytes = cuda_allocator::stats(device.index).peak_allocated;
    spdlog::info("peak GPU memory allocated: {:.2f} GiB", summary.peak_device_bytes / double(1ull << 30));
  }
  return summary;
}

}  // namespace moda
