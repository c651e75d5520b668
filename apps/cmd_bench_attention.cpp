// `moda bench attention`: times the fused MoDA attention kernels (kernels/cuda/moda_attention.h)
// on the paper's Table 2 grid and the LM-training shape. Per case: forward ms and forward+backward
// ms with depth (L) and the same kernels at L = 0, TFLOP/s, and the depth part's memory floor.
// Operands are laid out as in the model: K, V in depth-stream buffers [B, T, L+1, Hk, d] (the
// sequence K, V are slot L, the depth view is slots [0, L)), gradients into matching buffers.
// Timing: CUDA events around each call, median of --iters runs after --warmup runs.
// FLOPs: 4 * B * Hq * d * (visible keys incl. depth) forward, 2.5x that backward.
// With cuDNN (kernels/cuda/cudnn_sdpa.h available) each case also times our cuDNN fused-attention
// wrapper at L = 0 on the same operands ("cudnn fwd", "cudnn f+b", and "L0/cuDNN" = our L0 f+b over
// cuDNN's); a graph cuDNN rejects prints n/a and puts the message into the JSON ("moda_cudnn_error").
// Its JSON keys are moda_cudnn_*: bench/attention_baseline.py adds torch's cuDNN SDPA as cudnn_*.
// At L > 0 it also times the split MoDA path (autograd/attention_l0.h: cuDNN over the sequence keys,
// our depth merge and depth backward): "split f+b", and "split/cuDNN" = that over cuDNN's L = 0
// f+b, i.e. what the depth keys cost on top of the strongest baseline (JSON moda_split_fwdbwd_ms).
// `--json` prints one JSON array (read by bench/attention_baseline.py, which adds PyTorch's flash
// attention and prints the combined table).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/exit_codes.h"
#include "core/bf16.h"
#include "core/device.h"
#include "core/error.h"
#ifdef MODA_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#include "kernels/cuda/cudnn_sdpa.h"
#include "kernels/cuda/moda_attention.h"
#endif

namespace moda::app {
namespace {

struct AttnCase {
  std::string group;  // "table2" or "lm"
  int64_t B, T, Hq, Hk, L, d;
};

// [[maybe_unused]]: only the CUDA build runs the bench; a CPU-only build compiles these unused.
[[maybe_unused]] std::vector<AttnCase> all_cases() {
  std::vector<AttnCase> out;
  for (int64_t T : {4096, 8192, 16384, 32768, 65536}) out.push_back({"table2", 1, T, 64, 8, 64, 64});
  for (int64_t G : {2, 4, 16, 32}) out.push_back({"table2", 1, 16384, 8 * G, 8, 64, 64});  // G = 8 is above
  for (int64_t L : {128, 256}) out.push_back({"table2", 1, 16384, 64, 8, L, 64});
  out.push_back({"lm", 8, 4096, 16, 8, 72, 64});
  // The depth phase at the training configs' last layers (and T6's middle one): 125M (12 layers),
  // Table 6 (48 layers, width 384), Table 3 700M (36 layers); depth_kv_ffn adds 2 slots a layer.
  out.push_back({"train", 64, 1024, 12, 4, 22, 64});
  out.push_back({"train", 8, 4096, 6, 2, 47, 64});
  out.push_back({"train", 8, 4096, 6, 2, 94, 64});
  out.push_back({"train", 8, 4096, 16, 8, 70, 64});
  return out;
}

double visible_keys(const AttnCase& c) { return double(c.T) * double(c.T + 1) / 2 + double(c.T) * double(c.L); }
[[maybe_unused]] double fwd_flops(const AttnCase& c) { return 4.0 * c.B * c.Hq * c.d * visible_keys(c); }

[[maybe_unused]] double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

#ifdef MODA_HAVE_CUDA
const char* kOp = "moda bench attention";

// Device buffer filled with random bf16 values (a 16 MB random block repeated: fine for timing).
struct DevBuf {
  void* ptr = nullptr;
  explicit DevBuf(size_t bytes, const std::vector<bf16>* pattern = nullptr) {
    MODA_CUDA_CHECK(cudaMalloc(&ptr, bytes), kOp);
    if (!pattern) return;
    const size_t pb = pattern->size() * sizeof(bf16);
    for (size_t off = 0; off < bytes; off += pb)
      MODA_CUDA_CHECK(
          cudaMemcpy(static_cast<char*>(ptr) + off, pattern->data(), std::min(pb, bytes - off), cudaMemcpyHostToDevice),
          kOp);
  }
  ~DevBuf() { cudaFree(ptr); }
  DevBuf(const DevBuf&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

double time_ms(const std::function<void()>& fn, int warmup, int iters) {
  cudaEvent_t a, b;
  MODA_CUDA_CHECK(cudaEventCreate(&a), kOp);
  MODA_CUDA_CHECK(cudaEventCreate(&b), kOp);
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    MODA_CUDA_CHECK(cudaEventRecord(a), kOp);
    fn();
    MODA_CUDA_CHECK(cudaEventRecord(b), kOp);
    MODA_CUDA_CHECK(cudaEventSynchronize(b), kOp);
    float t = 0;
    MODA_CUDA_CHECK(cudaEventElapsedTime(&t, a, b), kOp);
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(ms);
}

// Device-to-device copy bandwidth (bytes read + written per second), the memory-floor reference.
double copy_bandwidth(int iters) {
  const size_t bytes = size_t(1) << 30;
  DevBuf src(bytes), dst(bytes);
  const double ms = time_ms(
      [&] { MODA_CUDA_CHECK(cudaMemcpyAsync(dst.ptr, src.ptr, bytes, cudaMemcpyDeviceToDevice), kOp); }, 2, iters);
  return 2.0 * double(bytes) / (ms * 1e-3);
}

// The split path's two depth kernels alone, the backward adding into the depth gradients as the
// model does (accumulate on), each against the bytes it must move (its own floor): per token and KV
// head, in rows of d: forward reads q (G rows), K, V (2L) and rewrites o (2G); backward reads q,
// dout, o (3G) and K, V (2L), rewrites dq (2G) and the depth gradients (4L).
void time_depth_kernels(const AttnCase& c, nlohmann::json& r, const std::function<void()>& depth_merge,
                        const std::function<void(bool accumulate)>& depth_backward, double bw, int warmup, int iters) {
  const double row = 2.0 * c.d, rows = double(c.B) * c.T * c.Hk, G = double(c.Hq / c.Hk), L = double(c.L);
  r["depth_fwd_ms"] = time_ms(depth_merge, warmup, iters);
  r["depth_bwd_ms"] = time_ms([&] { depth_backward(true); }, warmup, iters);
  r["depth_fwd_floor_ms"] = rows * row * (3 * G + 2 * L) / bw * 1e3;
  r["depth_bwd_floor_ms"] = rows * row * (5 * G + 6 * L) / bw * 1e3;
}

// One table row per case that has the depth kernels' timings.
void print_depth_table(const nlohmann::json& all) {
  std::printf(
      "\ndepth kernels of the split path alone (backward accumulating, as in the model); floor = the bytes\n"
      "each must move / copy bandwidth\n%-7s %2s %6s %4s %3s %3s | %9s %9s %6s | %9s %9s %6s\n",
      "group", "B", "T", "Hq", "G", "L", "fwd ms", "floor", "ratio", "bwd ms", "floor", "ratio");
  for (const auto& r : all) {
    if (!r.contains("depth_fwd_ms")) continue;
    const double f = r["depth_fwd_ms"], ff = r["depth_fwd_floor_ms"], b = r["depth_bwd_ms"],
                 bf = r["depth_bwd_floor_ms"];
    std::printf("%-7s %2lld %6lld %4lld %3lld %3lld | %9.3f %9.3f %6.2f | %9.3f %9.3f %6.2f\n",
                r["group"].get<std::string>().c_str(), r["B"].get<long long>(), r["T"].get<long long>(),
                r["Hq"].get<long long>(), r["G"].get<long long>(), r["L"].get<long long>(), f, ff, f / ff, b, bf,
                b / bf);
  }
}

nlohmann::json run_case(const AttnCase& c, const std::vector<bf16>& pattern, int warmup, int iters, double bw,
                        bool with_cudnn) {
  const int64_t S = c.L + 1, G = c.Hq / c.Hk;
  const size_t qbytes = size_t(c.B * c.T * c.Hq * c.d) * 2, sbytes = size_t(c.B * c.T * S * c.Hk * c.d) * 2;
  DevBuf q(qbytes, &pattern), dout(qbytes, &pattern), o(qbytes), dq(qbytes);
  DevBuf kst(sbytes, &pattern), vst(sbytes, &pattern), dkst(sbytes), dvst(sbytes);
  // The accumulating depth backward reads the gradients: start them at zero, not at whatever
  // the allocation held (NaNs would not change the timing, but would poison a checked run).
  MODA_CUDA_CHECK(cudaMemset(dkst.ptr, 0, sbytes), kOp);
  MODA_CUDA_CHECK(cudaMemset(dvst.ptr, 0, sbytes), kOp);
  DevBuf lse(size_t(c.B * c.Hq * c.T) * 4);
  ModaAttentionShape shape;
  shape.B = c.B, shape.T = c.T, shape.Hq = c.Hq, shape.Hk = c.Hk, shape.L = c.L, shape.d = c.d, shape.causal = true;
  DevBuf ws(cuda::moda_attention_backward_workspace_bytes(shape));
  const ModaStrides qs = moda_strides_bthd(c.T, c.Hq, c.d), seq = moda_strides_stream_slot(c.T, S, c.Hk, c.d),
                    dep = moda_strides_depth(c.T, S, c.Hk, c.d);
  const int64_t so = c.L * c.Hk * c.d;
  const bf16 *K = kst.as<bf16>(), *V = vst.as<bf16>();
  bf16 *dK = dkst.as<bf16>(), *dV = dvst.as<bf16>();

  auto fwd = [&](const ModaAttentionShape& s) {
    cuda::moda_attention_forward(s, q.as<bf16>(), qs, K + so, seq, V + so, seq, K, dep, V, dep, o.as<bf16>(), qs,
                                 lse.as<float>(), nullptr);
  };
  auto fwd_bwd = [&](const ModaAttentionShape& s) {
    fwd(s);
    cuda::moda_attention_backward(s, q.as<bf16>(), qs, K + so, seq, V + so, seq, K, dep, V, dep, o.as<bf16>(), qs,
                                  lse.as<float>(), dout.as<bf16>(), qs, dq.as<bf16>(), qs, dK + so, seq, dV + so, seq,
                                  dK, dep, dV, dep, false, false, ws.ptr, nullptr);
  };
  ModaAttentionShape flat = shape;
  flat.L = 0;
  AttnCase c0 = c;
  c0.L = 0;
  nlohmann::json r;
  r["group"] = c.group, r["B"] = c.B, r["T"] = c.T, r["Hq"] = c.Hq, r["Hk"] = c.Hk, r["G"] = G, r["L"] = c.L,
  r["d"] = c.d;
  r["fwd_ms"] = time_ms([&] { fwd(shape); }, warmup, iters);
  r["fwdbwd_ms"] = time_ms([&] { fwd_bwd(shape); }, warmup, iters);
  r["l0_fwd_ms"] = time_ms([&] { fwd(flat); }, warmup, iters);
  r["l0_fwdbwd_ms"] = time_ms([&] { fwd_bwd(flat); }, warmup, iters);
  if (with_cudnn) {
    // Our cuDNN wrapper at L = 0 on the same operands (sequence K, V = stream slot L).
    cuda::CudnnSdpaParams p;
    p.B = c.B, p.Tq = c.T, p.Tk = c.T, p.Hq = c.Hq, p.Hk = c.Hk, p.d = c.d, p.causal = true;
    p.q = q.as<bf16>(), p.q_strides = qs, p.k = K + so, p.k_strides = seq, p.v = V + so, p.v_strides = seq;
    p.o = o.as<bf16>(), p.o_strides = qs, p.stats = lse.as<float>();
    p.dout = dout.as<bf16>(), p.dout_strides = qs, p.dq = dq.as<bf16>(), p.dq_strides = qs;
    p.dk = dK + so, p.dk_strides = seq, p.dv = dV + so, p.dv_strides = seq;
    try {
      r["moda_cudnn_fwd_ms"] = time_ms([&] { cuda::cudnn_sdpa_forward(p, nullptr); }, warmup, iters);
      r["moda_cudnn_fwdbwd_ms"] = time_ms(
          [&] {
            cuda::cudnn_sdpa_forward(p, nullptr);
            cuda::cudnn_sdpa_backward(p, nullptr);
          },
          warmup, iters);
      r["l0_over_moda_cudnn"] = r["l0_fwdbwd_ms"].get<double>() / r["moda_cudnn_fwdbwd_ms"].get<double>();
      if (c.L > 0) {
        auto depth_merge = [&] {
          cuda::moda_attention_forward_depth_merge(shape, q.as<bf16>(), qs, K, dep, V, dep, o.as<bf16>(), qs,
                                                   lse.as<float>(), nullptr);
        };
        auto depth_backward = [&](bool accumulate) {
          cuda::moda_attention_backward_depth(shape, q.as<bf16>(), qs, K, dep, V, dep, o.as<bf16>(), qs,
                                              lse.as<float>(), dout.as<bf16>(), qs, dq.as<bf16>(), qs, dK, dep, dV, dep,
                                              accumulate, ws.ptr, nullptr);
        };
        r["moda_split_fwdbwd_ms"] = time_ms(
            [&] {
              cuda::cudnn_sdpa_forward(p, nullptr);
              depth_merge();
              cuda::cudnn_sdpa_backward(p, nullptr);
              depth_backward(false);
            },
            warmup, iters);
        r["split_over_moda_cudnn"] = r["moda_split_fwdbwd_ms"].get<double>() / r["moda_cudnn_fwdbwd_ms"].get<double>();
        time_depth_kernels(c, r, depth_merge, depth_backward, bw, warmup, iters);
      }
    } catch (const Error& e) {
      r["moda_cudnn_error"] = e.what();
    }
  }
  MODA_CUDA_CHECK(cudaDeviceSynchronize(), kOp);
  r["fwd_tflops"] = fwd_flops(c) / (r["fwd_ms"].get<double>() * 1e-3) / 1e12;
  r["fwdbwd_tflops"] = 3.5 * fwd_flops(c) / (r["fwdbwd_ms"].get<double>() * 1e-3) / 1e12;
  r["l0_fwdbwd_tflops"] = 3.5 * fwd_flops(c0) / (r["l0_fwdbwd_ms"].get<double>() * 1e-3) / 1e12;
  // Depth floor: depth K, V read once forward; read once and their gradients written once backward.
  const double depth_bytes = 2.0 * double(c.B) * c.T * c.L * c.Hk * c.d * 2;
  r["depth_floor_fwd_ms"] = depth_bytes / bw * 1e3;
  r["depth_floor_fwdbwd_ms"] = 3.0 * depth_bytes / bw * 1e3;
  return r;
}
#endif

int run(const std::vector<std::string>& argv) {
  Args args(argv, {"cases", "iters", "warmup", "only"}, {"json"});
  const std::string which = args.get_or("cases", "all");
  MODA_USAGE_CHECK(which == "all" || which == "table2" || which == "lm" || which == "train",
                   "--cases must be all, table2, lm or train, got '", which, "'");
  const int iters = int(args.get_int("iters", 10)), warmup = int(args.get_int("warmup", 3));
  MODA_USAGE_CHECK(iters >= 1 && warmup >= 0, "--iters must be >= 1 and --warmup >= 0");
  std::vector<size_t> only;  // indices into the case list, for quick runs
  for (const auto& v : args.all("only")) {
    MODA_USAGE_CHECK(!v.empty() && v.find_first_not_of("0123456789") == std::string::npos && v.size() < 10,
                     "--only: expected case indices (0, 1, ...), got '", v, "'");
    only.push_back(size_t(std::stoul(v)));
  }
#ifdef MODA_HAVE_CUDA
  MODA_CHECK(cuda_available(), "moda bench attention needs a CUDA device");
  cudaDeviceProp prop{};
  MODA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0), kOp);
  std::vector<bf16> pattern(size_t(8) << 20);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& x : pattern) x = float_to_bf16(nd(rng));
  const double bw = copy_bandwidth(iters);
  const bool json = args.has("json");
  std::string cudnn_why;
  const bool with_cudnn = cuda::cudnn_sdpa_available(&cudnn_why);
  if (!json) std::printf("cuDNN wrapper columns: %s\n", with_cudnn ? cudnn_why.c_str() : ("off, " + cudnn_why).c_str());
  nlohmann::json all = nlohmann::json::array();
  const auto cases = all_cases();
  if (!json)
    std::printf(
        "%s, copy bandwidth %.0f GB/s; causal, bf16, median of %d\n%-7s %2s %6s %4s %3s %3s %4s | %9s %9s %7s | %9s "
        "%9s | %9s | %9s %9s %8s | %9s %11s\n",
        prop.name, bw / 1e9, iters, "group", "B", "T", "Hq", "G", "L", "d", "fwd ms", "fwd+bwd", "TFLOP/s", "L0 fwd",
        "L0 f+b", "floor ms", "cudnn fwd", "cudnn f+b", "L0/cuDNN", "split f+b", "split/cuDNN");
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    if ((which != "all" && c.group != which) || (!only.empty() && std::find(only.begin(), only.end(), i) == only.end()))
      continue;
    nlohmann::json r = run_case(c, pattern, warmup, iters, bw, with_cudnn);
    r["gpu"] = prop.name;
    r["copy_GBps"] = bw / 1e9;
    if (!json) {
      char cudnn_cols[64] = "      n/a       n/a      n/a", split_cols[64] = "      n/a         n/a";
      if (r.contains("moda_cudnn_fwdbwd_ms"))
        std::snprintf(cudnn_cols, sizeof cudnn_cols, "%9.3f %9.3f %8.3f", r["moda_cudnn_fwd_ms"].get<double>(),
                      r["moda_cudnn_fwdbwd_ms"].get<double>(), r["l0_over_moda_cudnn"].get<double>());
      if (r.contains("moda_split_fwdbwd_ms"))
        std::snprintf(split_cols, sizeof split_cols, "%9.3f %11.3f", r["moda_split_fwdbwd_ms"].get<double>(),
                      r["split_over_moda_cudnn"].get<double>());
      std::printf("%-7s %2lld %6lld %4lld %3lld %3lld %4lld | %9.3f %9.3f %7.1f | %9.3f %9.3f | %9.3f | %s | %s\n",
                  c.group.c_str(), (long long)c.B, (long long)c.T, (long long)c.Hq, (long long)(c.Hq / c.Hk),
                  (long long)c.L, (long long)c.d, r["fwd_ms"].get<double>(), r["fwdbwd_ms"].get<double>(),
                  r["fwdbwd_tflops"].get<double>(), r["l0_fwd_ms"].get<double>(), r["l0_fwdbwd_ms"].get<double>(),
                  r["depth_floor_fwdbwd_ms"].get<double>(), cudnn_cols, split_cols);
      if (r.contains("moda_cudnn_error"))
        std::printf("  cudnn: %s\n", r["moda_cudnn_error"].get<std::string>().c_str());
    }
    std::fflush(stdout);
    all.push_back(r);
  }
  if (json)
    std::printf("%s\n", all.dump(1).c_str());
  else
    print_depth_table(all);
  return 0;
#else
  MODA_FAIL("moda bench attention needs a build with CUDA");
#endif
}

constexpr const char* kBenchAttentionUsage =
    R"(usage: moda bench attention [--cases all|table2|lm|train] [--only I...] [--iters N] [--warmup N] [--json]
  Times the fused MoDA attention kernels (forward, forward+backward, and L=0) on the paper's
  shapes, causal, bf16 (docs/attention-kernels.md). Needs a CUDA device. With cuDNN, also our
  cuDNN fused-attention wrapper at L=0 (columns cudnn fwd, cudnn f+b, L0/cuDNN) and, at L>0, the
  split path: cuDNN over the sequence keys + our depth kernels (split f+b, split/cuDNN), and
  then a table of the two depth kernels alone against the bytes each must move.
  --cases C           all (default), table2, lm or train (the training configs' depth shapes)
  --only I...         only the cases with these indices (0-based, in the list order)
  --iters N           timed runs per case (default 10)
  --warmup N          untimed runs first (default 3)
  --json              one JSON object per case instead of the table
)";

MODA_COMMAND("bench attention", "time the fused MoDA attention kernels (fwd, fwd+bwd, L=0) on the paper's shapes",
             kBenchAttentionUsage, run);

}  // namespace
}  // namespace moda::app
