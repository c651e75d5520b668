#include "autograd/attention_l0.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <tuple>

#include "autograd/moda_attention_views.h"
#include "core/error.h"

#ifdef MODA_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/allocator.h"
#include "core/cuda_check.h"
#include "core/stream.h"
#include "kernels/cuda/cudnn_sdpa.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/grad_norm.h"
#include "kernels/cuda/moda_attention.h"
#endif

namespace moda::ops {

namespace {
std::atomic<AttentionL0> g_mode{AttentionL0::Auto};
}  // namespace

AttentionL0 parse_attention_l0(const std::string& value, const std::string& field) {
  if (value == "auto") return AttentionL0::Auto;
  if (value == "moda") return AttentionL0::Moda;
  if (value == "cudnn") return AttentionL0::Cudnn;
  MODA_FAIL(field, ": \"", value, "\" is not a choice of L = 0 attention kernels; expected \"auto\", \"moda\" or ",
            "\"cudnn\"");
}

const char* attention_l0_name(AttentionL0 mode) {
  switch (mode) {
    case AttentionL0::Auto: return "auto";
    case AttentionL0::Moda: return "moda";
    case AttentionL0::Cudnn: return "cudnn";
  }
  return "?";
}

void set_attention_l0(AttentionL0 mode, Device device) {
#ifdef MODA_HAVE_CUDA
  std::string why;
  MODA_CHECK(mode != AttentionL0::Cudnn || !device.is_cuda() || cuda::cudnn_sdpa_available(&why),
             "L = 0 attention \"cudnn\" was asked for, but cuDNN cannot run here: ", why);
#else
  (void)device;
#endif
  g_mode = mode;
}

AttentionL0 attention_l0() { return g_mode; }

#ifdef MODA_HAVE_CUDA
namespace l0 {

namespace {

using attention_views::bthd, attention_views::btlhd, attention_views::ptr;

// The sequence keys' half of a shape (what cuDNN computes).
ModaAttentionShape sequence_part(ModaAttentionShape s) {
  s.L = 0;
  return s;
}

cuda::CudnnSdpaParams params(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& o, const Tensor& lse) {
  cuda::CudnnSdpaParams p;
  p.B = s.B, p.Tq = s.T, p.Tk = s.keys(), p.Hq = s.Hq, p.Hk = s.Hk, p.d = s.d, p.scale = s.scale, p.causal = s.causal;
  p.q = q.data<bf16>(), p.q_strides = bthd(q);
  p.k = k.data<bf16>(), p.k_strides = bthd(k);
  p.v = v.data<bf16>(), p.v_strides = bthd(v);
  p.o = o.data<bf16>(), p.o_strides = bthd(o);
  p.stats = lse.data<float>();
  return p;
}

// What the cuDNN wrapper supports (kernels/cuda/cudnn_sdpa.h): everything else runs ours.
bool cudnn_supports(const ModaAttentionShape& s) {
  return s.aligned() && (s.d == 64 || s.d == 128) && s.Hq % s.Hk == 0;
}

// Relative L2 distance of two contiguous bf16 tensors, on the device (a host copy of the depth
// gradients took ~1 s per shape at 48 layers); `a` is overwritten with a - ref.
double rel_l2_consuming(const Tensor& a, const Tensor& ref) {
  const int64_t n = ref.numel();
  cuda::axpy(a.data<bf16>(), ref.data<bf16>(), -1.0, n, current_stream());
  const double num = cuda::grad_norm(a.data<bf16>(), n, current_stream());
  const double den = cuda::grad_norm(ref.data<bf16>(), n, current_stream());
  return num / (den > 0 ? den : 1.0);
}

// Sequences the tuning runs on: enough tokens to fill the GPU (the choice is a per-token cost
// ratio), few enough that both pairs' temporaries (the depth gradients are B*T*L*Hk*d each) stay
// small next to the step's activations: at B = 64 they raised the 125M run's reserved peak by 11 GiB.
constexpr int64_t kTuneTokens = 16384;
int64_t tune_batch(const ModaAttentionShape& s) { return std::clamp<int64_t>(kTuneTokens / s.T, 1, s.B); }

// Times and checks both kernel pairs on the call's operands; true when cuDNN should be used.
bool tune(const ModaAttentionShape& full, const Tensor& q_full, const Tensor& k_full, const Tensor& v_full,
          const Tensor& kd_full, const Tensor& vd_full) {
  ModaAttentionShape s = full;
  s.B = tune_batch(full);
  auto first = [&](const Tensor& t) { return t.defined() ? t.narrow(0, 0, s.B) : Tensor(); };
  const Tensor q = first(q_full), k = first(k_full), v = first(v_full), kd = first(kd_full), vd = first(vd_full);
  const Device dev = q.device();
  struct Outs {
    Tensor o, lse, dq, dk, dv, dkd, dvd;
  };
  auto outs = [&] {
    auto like = [&](const Tensor& t) { return t.defined() ? Tensor::empty(t.shape(), DType::BF16, dev) : Tensor(); };
    return Outs{like(q), Tensor::empty({s.B, s.Hq, s.T}, DType::F32, dev), like(q), like(k), like(v), like(kd),
                like(vd)};
  };
  Outs ours = outs(), cud = outs();
  const Tensor& dout = q;  // any tensor of o's shape will do for comparing and timing
  auto run_ours = [&] {
    ours_forward(s, q, k, v, kd, vd, ours.o, ours.lse);
    ours_backward(s, q, k, v, kd, vd, ours.o, ours.lse, dout, ours.dq, ours.dk, ours.dv, ours.dkd, ours.dvd, false);
  };
  auto run_cudnn = [&] {
    cudnn_forward(s, q, k, v, kd, vd, cud.o, cud.lse);
    cudnn_backward(s, q, k, v, kd, vd, cud.o, cud.lse, dout, cud.dq, cud.dk, cud.dv, cud.dkd, cud.dvd, false);
  };
  const std::string shape = fmt::format("L={} B={} T={} Hq={} Hk={} d={}{} (tuned on {} sequences)", s.L, full.B, s.T,
                                        s.Hq, s.Hk, s.d, s.causal ? " causal" : "", s.B);
  try {
    run_ours(), run_cudnn();  // warm-up: cuDNN builds its plans here
    synchronize_device();
  } catch (const Error& e) {
    spdlog::warn("attention {}: cuDNN failed ({}); using ours", shape, e.what());
    return false;
  }
  double worst = 0;
  for (auto [a, b] : {std::pair{&cud.o, &ours.o},
                      {&cud.dq, &ours.dq},
                      {&cud.dk, &ours.dk},
                      {&cud.dv, &ours.dv},
                      {&cud.dkd, &ours.dkd},
                      {&cud.dvd, &ours.dvd}})
    if (a->defined()) worst = std::max(worst, rel_l2_consuming(*a, *b));
  if (!(worst < 2e-2)) {
    spdlog::warn("attention {}: cuDNN's outputs differ from ours (relative L2 {:.3g}); using ours", shape, worst);
    return false;
  }
  auto time_ms = [&](auto&& run) {
    Event start, stop;
    start.record(current_stream());
    for (int i = 0; i < 3; ++i) run();
    stop.record(current_stream());
    stop.synchronize();
    return stop.elapsed_ms_since(start) / 3;
  };
  const double t_ours = time_ms(run_ours), t_cudnn = time_ms(run_cudnn);
  const bool use = t_cudnn < 0.95 * t_ours;
  spdlog::info("attention {}: forward+backward ours {:.3f} ms, cuDNN {:.3f} ms (agree to {:.1e}): using {}", shape,
               t_ours, t_cudnn, worst, use ? "cuDNN" : "ours");
  return use;
}

}  // namespace

void ours_forward(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kd,
                  const Tensor& vd, const Tensor& o, const Tensor& lse) {
  cuda::moda_attention_forward(s, ptr<bf16>(q), bthd(q), ptr<bf16>(k), bthd(k), ptr<bf16>(v), bthd(v), ptr<bf16>(kd),
                               btlhd(kd), ptr<bf16>(vd), btlhd(vd), ptr<bf16>(o), bthd(o), ptr<float>(lse),
                               current_stream());
}

void ours_backward(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kd,
                   const Tensor& vd, const Tensor& o, const Tensor& lse, const Tensor& dout, const Tensor& dq,
                   const Tensor& dk, const Tensor& dv, const Tensor& dkd, const Tensor& dvd, bool accumulate) {
  // Scratch from the caching allocator (16-byte aligned), released when `ws` goes out of scope.
  const int64_t ws_bytes = int64_t(cuda::moda_attention_backward_workspace_bytes(s));
  Tensor ws = Tensor::empty({(ws_bytes + 3) / 4}, DType::F32, q.device());
  cuda::moda_attention_backward(s, ptr<bf16>(q), bthd(q), ptr<bf16>(k), bthd(k), ptr<bf16>(v), bthd(v), ptr<bf16>(kd),
                                btlhd(kd), ptr<bf16>(vd), btlhd(vd), ptr<bf16>(o), bthd(o), ptr<float>(lse),
                                ptr<bf16>(dout), bthd(dout), ptr<bf16>(dq), bthd(dq), ptr<bf16>(dk), bthd(dk),
                                ptr<bf16>(dv), bthd(dv), ptr<bf16>(dkd), btlhd(dkd), ptr<bf16>(dvd), btlhd(dvd),
                                accumulate, accumulate, ws.data_ptr(), current_stream());
}

bool use_cudnn(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kd,
               const Tensor& vd) {
  const AttentionL0 mode = g_mode;
  if (mode == AttentionL0::Moda || !cudnn_supports(s)) return false;
  if (mode == AttentionL0::Cudnn) return true;
  static const bool available = cuda::cudnn_sdpa_available();
  if (!available) return false;
  // Tuning synchronises the device: not possible while a CUDA graph is being captured.
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  MODA_CUDA_CHECK(cudaStreamIsCapturing(current_stream(), &capture), "attention L=0 choice");
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, int>;
  static std::mutex mu;
  static std::map<Key, bool> chosen;
  const Key key{s.L, s.B, s.T, s.Hq, s.Hk, s.d, s.causal, q.device().index};
  std::lock_guard<std::mutex> lock(mu);
  auto it = chosen.find(key);
  if (it != chosen.end()) return it->second;
  if (capture != cudaStreamCaptureStatusNone) return false;
  chosen[key] = tune(s, q, k, v, kd, vd);
  // The caching allocator reuses a block only for requests of up to its size: the tuning's
  // temporaries (a different batch size per depth) would stay cached and unused, and the 700M
  // depth_kv_ffn run reserved 138 GiB for 77 GiB live. Hand them back now (tune synchronised).
  cuda_allocator::release_cached(q.device().index);
  return chosen[key];
}

void cudnn_forward(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kd,
                   const Tensor& vd, const Tensor& o, const Tensor& lse) {
  cuda::cudnn_sdpa_forward(params(sequence_part(s), q, k, v, o, lse), current_stream());
  if (s.L > 0)
    cuda::moda_attention_forward_depth_merge(s, q.data<bf16>(), bthd(q), kd.data<bf16>(), btlhd(kd), vd.data<bf16>(),
                                             btlhd(vd), o.data<bf16>(), bthd(o), lse.data<float>(), current_stream());
}

void cudnn_backward(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kd,
                    const Tensor& vd, const Tensor& o, const Tensor& lse, const Tensor& dout, const Tensor& dq,
                    const Tensor& dk, const Tensor& dv, const Tensor& dkd, const Tensor& dvd, bool accumulate) {
  // cuDNN on MoDA's o and lse gives exactly the sequence keys' part of the gradients (its P is
  // exp(S - lse) and its rowsum(dO o) uses the full o); the depth part is then added by ours.
  cuda::CudnnSdpaParams p = params(sequence_part(s), q, k, v, o, lse);
  const Tensor gk = accumulate ? Tensor::empty(k.shape(), DType::BF16, k.device()) : dk;
  const Tensor gv = accumulate ? Tensor::empty(v.shape(), DType::BF16, v.device()) : dv;
  p.dout = dout.data<bf16>(), p.dout_strides = bthd(dout);
  p.dq = dq.data<bf16>(), p.dq_strides = bthd(dq);
  p.dk = gk.data<bf16>(), p.dk_strides = bthd(gk);
  p.dv = gv.data<bf16>(), p.dv_strides = bthd(gv);
  cuda::cudnn_sdpa_backward(p, current_stream());
  // target += fresh, through a contiguous copy when the target is a strided view (a stream slot).
  for (auto [target, fresh] : {std::pair{&dk, &gk}, {&dv, &gv}}) {
    if (!accumulate) break;  // cuDNN wrote dk, dv themselves
    Tensor sum = target->is_contiguous() ? *target : target->contiguous();
    cuda::add(sum.data<bf16>(), sum.data<bf16>(), fresh->data<bf16>(), sum.numel(), current_stream());
    if (!target->is_contiguous()) Tensor(*target).copy_(sum);  // a handle copy writes the same data
  }
  if (s.L == 0) return;
  const int64_t ws_bytes = int64_t(cuda::moda_attention_backward_workspace_bytes(s));
  Tensor ws = Tensor::empty({(ws_bytes + 3) / 4}, DType::F32, q.device());
  cuda::moda_attention_backward_depth(s, q.data<bf16>(), bthd(q), kd.data<bf16>(), btlhd(kd), vd.data<bf16>(),
                                      btlhd(vd), o.data<bf16>(), bthd(o), lse.data<float>(), dout.data<bf16>(),
                                      bthd(dout), dq.data<bf16>(), bthd(dq), dkd.data<bf16>(), btlhd(dkd),
                                      dvd.data<bf16>(), btlhd(dvd), accumulate, ws.data_ptr(), current_stream());
}

}  // namespace l0
#endif

}  // namespace moda::ops
