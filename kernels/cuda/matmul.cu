// cuBLASLt GEMM for row-major operands. cuBLASLt is column-major, so the row-major product
// C = op(A) op(B) is issued as the column-major product C^T = op(B)^T op(A)^T: cuBLASLt's "A" is
// our B and its "B" is our A, with m and n swapped. A row-major matrix with r rows, c columns and
// row stride ld is the column-major matrix with c rows, r columns and leading dimension ld.
// Autotuning (MODA_GEMM_AUTOTUNE, default on): a plan keeps up to 8 heuristic candidates; on its
// first use outside graph capture each is timed on the caller's stream (events, 1 warm-up + 3
// runs) and the fastest is kept if it beats the first pick by 5 %. The heuristic's first pick is
// slow for some training shapes (issue 15). With beta != 0 the timing runs write a scratch D, so C is never accumulated
// twice.
#include <cuda_bf16.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "core/stream.h"
#include "kernels/cuda/matmul.h"

namespace moda::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

enum class Kind : int64_t { F32, BF16, BF16_F32 };

cudaDataType_t in_type(Kind k) { return k == Kind::F32 ? CUDA_R_32F : CUDA_R_16BF; }
cudaDataType_t out_type(Kind k) { return k == Kind::BF16 ? CUDA_R_16BF : CUDA_R_32F; }
size_t in_size(Kind k) { return k == Kind::F32 ? 4 : 2; }
size_t out_size(Kind k) { return k == Kind::BF16 ? 2 : 4; }
const char* kind_name(Kind k) { return k == Kind::F32 ? "f32" : k == Kind::BF16 ? "bf16" : "bf16->f32"; }

// Largest power of two <= 256 dividing the address and (for batches) the batch stride in bytes:
// cuBLASLt only picks kernels whose alignment needs every batch entry meets.
uint32_t alignment(const void* p, int64_t stride_elems, size_t elem, int64_t batch) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p);
  if (batch > 1) bits |= uint64_t(stride_elems) * elem;
  uint32_t a = 256;
  while (a > 1 && bits % a != 0) a /= 2;
  return a;
}

using PlanKey = std::array<int64_t, 21>;

constexpr int kMaxCandidates = 8;

struct Candidate {
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  std::vector<Candidate> candidates;        // heuristic order: [0] is its first pick
  size_t chosen = 0;                        // index into candidates
  bool tuned = false;                       // timing done (or given up on); false while never used outside capture
  float first_us = -1.f, chosen_us = -1.f;  // per launch, from the timing (-1: not timed)
  bool bias_epilogue = false;               // false when a bias was asked for but no bias kernel exists: added after
  GemmDesc g;                               // resolved, of the first call; for matmul_plan_report
  Kind kind = Kind::F32;
  ~Plan() {
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

// Everything cached per calling thread: no locks, and a plan's descriptor can be mutated (bias
// pointer) right before its use. Destroyed at thread exit; errors then are ignored (the driver may
// already be gone at process exit).
struct ThreadState {
  std::map<int, cublasLtHandle_t> handles;
  std::map<std::pair<int, cudaStream_t>, void*> workspaces;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
  std::map<std::pair<int, bool>, std::pair<void*, int64_t>> ones;  // (device, bf16) -> (buffer, length)
  ~ThreadState() {
    plans.clear();
    for (auto& [k, w] : workspaces) cudaFree(w);
    for (auto& [k, o] : ones) cudaFree(o.first);
    for (auto& [d, h] : handles) cublasLtDestroy(h);
  }
};
thread_local ThreadState state;

int current_device() {
  int d = 0;
  MODA_CUDA_CHECK(cudaGetDevice(&d), "matmul");
  return d;
}

cublasLtHandle_t handle_for(int device) {
  auto it = state.handles.find(device);
  if (it != state.handles.end()) return it->second;
  cublasLtHandle_t h = nullptr;
  MODA_CUBLAS_CHECK(cublasLtCreate(&h), "matmul");
  state.handles[device] = h;
  return h;
}

void* workspace_for(int device, cudaStream_t stream) {
  auto key = std::make_pair(device, stream);
  auto it = state.workspaces.find(key);
  if (it != state.workspaces.end()) return it->second;
  void* w = nullptr;
  MODA_CUDA_CHECK(cudaMalloc(&w, kWorkspaceBytes), "matmul workspace (32 MiB)");
  state.workspaces[key] = w;
  return w;
}

void set_batch(cublasLtMatrixLayout_t l, int64_t batch, int64_t stride) {
  if (batch <= 1) return;
  int32_t count = static_cast<int32_t>(batch);
  MODA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
                    "matmul");
  MODA_CUBLAS_CHECK(
      cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
      "matmul");
}

// Builds descriptors and asks the heuristic for the best algorithm; false when none exists.
bool build_plan(Plan& p, cublasLtHandle_t h, const GemmDesc& g, Kind kind, bool bias, const uint32_t align[3]) {
  const cublasComputeType_t compute =
      (kind == Kind::F32 && g.allow_tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  MODA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F), "matmul");
  const cublasOperation_t op_a = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our B
  const cublasOperation_t op_b = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  MODA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a), "matmul");
  MODA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b), "matmul");
  if (bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bt = out_type(kind);
    MODA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
                      "matmul");
    MODA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt),
                      "matmul");
  }
  const uint64_t la_rows = g.trans_b ? g.k : g.n, la_cols = g.trans_b ? g.n : g.k;
  const uint64_t lb_rows = g.trans_a ? g.m : g.k, lb_cols = g.trans_a ? g.k : g.m;
  MODA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.la, in_type(kind), la_rows, la_cols, g.ldb), "matmul");
  MODA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.lb, in_type(kind), lb_rows, lb_cols, g.lda), "matmul");
  MODA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.lc, out_type(kind), g.n, g.m, g.ldc), "matmul");
  set_batch(p.la, g.batch, g.stride_b);
  set_batch(p.lb, g.batch, g.stride_a);
  set_batch(p.lc, g.batch, g.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  MODA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref), "matmul");
  const uint64_t ws = kWorkspaceBytes;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  // align[0] is our A (cuBLASLt's B), align[1] our B (cuBLASLt's A), align[2] C and D.
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align[1], sizeof(uint32_t));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align[0], sizeof(uint32_t));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align[2], sizeof(uint32_t));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align[2], sizeof(uint32_t));
  cublasLtMatmulHeuristicResult_t results[kMaxCandidates] = {};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(h, p.desc, p.la, p.lb, p.lc, p.lc, pref, kMaxCandidates, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS) return false;
  for (int i = 0; i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) p.candidates.push_back({results[i].algo, results[i].workspaceSize});
  if (p.candidates.empty()) return false;
  p.bias_epilogue = bias;
  p.g = g;
  p.kind = kind;
  return true;
}

// MODA_GEMM_AUTOTUNE=0 keeps the heuristic's first pick (bitwise reproducible run to run); any
// other value or unset: autotune. Read once.
bool autotune_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("MODA_GEMM_AUTOTUNE");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}

// Whether work issued on `stream` now would be captured into a graph (no timing, no allocation
// then). A failing query (e.g. the legacy stream while another stream captures globally) counts
// as capturing.
bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) {
    cudaGetLastError();
    return true;
  }
  return status != cudaStreamCaptureStatusNone;
}

// Times every candidate of `p` on `stream` (1 warm-up + 3 launches) and keeps the fastest in
// p.chosen. For beta == 0 the runs write C in place (the caller's real run overwrites it after).
// For beta != 0 they read C and write a scratch D of C's layout, so C is left as it was; no
// scratch memory -> no tuning. Candidates whose launch fails are skipped. Synchronises `stream`.
void tune(Plan& p, const GemmDesc& g, cublasLtHandle_t h, const void* a, const void* b, void* c, void* workspace,
          cudaStream_t stream) {
  p.tuned = true;
  void* d = c;
  struct Scratch {
    void* ptr = nullptr;
    ~Scratch() {
      if (ptr) cudaFree(ptr);  // waits for the device; the timing has synchronised the stream anyway
    }
  } scratch;
  // D spans C's layout (the last batch entry's last row ends at its n-th element); cudaMalloc's
  // 256-byte alignment meets the C/D alignment the plan's algorithms were chosen for.
  if (g.beta != 0.f) {
    const size_t elems = size_t((g.batch - 1) * g.stride_c + (g.m - 1) * g.ldc + g.n);
    if (cudaMalloc(&scratch.ptr, elems * out_size(p.kind)) != cudaSuccess) {
      cudaGetLastError();  // out of memory: clear it and keep the heuristic's first pick
      scratch.ptr = nullptr;
      return;
    }
    d = scratch.ptr;
  }
  const float alpha = g.alpha, beta = g.beta;
  auto launch = [&](const Candidate& cand) {
    const cublasStatus_t st = cublasLtMatmul(h, p.desc, &alpha, b, p.la, a, p.lb, &beta, c, p.lc, d, p.lc, &cand.algo,
                                             workspace, cand.workspace, stream);
    if (st != CUBLAS_STATUS_SUCCESS) cudaGetLastError();  // a failed launch may leave an error behind
    return st == CUBLAS_STATUS_SUCCESS;
  };
  constexpr int kRuns = 3;
  constexpr float kSwitchRatio = 0.95f;
  Event start, stop;
  float best = -1.f;
  for (size_t i = 0; i < p.candidates.size(); ++i) {
    if (!launch(p.candidates[i])) continue;  // warm-up
    start.record(stream);
    bool ok = true;
    for (int r = 0; r < kRuns && ok; ++r) ok = launch(p.candidates[i]);
    stop.record(stream);
    stop.synchronize();
    if (!ok) continue;
    const float us = 1000.f * stop.elapsed_ms_since(start) / kRuns;
    if (i == 0) p.first_us = us;
    if (best < 0 || us < best) {
      best = us;
      p.chosen = i;
    }
  }
  // Another algorithm replaces the first pick only when clearly faster: two that time within
  // noise would otherwise be chosen at random, and a run would not repeat its own numerics.
  if (p.first_us > 0 && p.chosen != 0 && best > kSwitchRatio * p.first_us) p.chosen = 0, best = p.first_us;
  p.chosen_us = best;
}

Plan& plan_for(int device, const GemmDesc& g, Kind kind, bool bias, const uint32_t align[3]) {
  const PlanKey key{device,     int64_t(kind), g.trans_a,     g.trans_b, g.allow_tf32, g.m,        g.n,
                    g.k,        g.lda,         g.ldb,         g.ldc,     g.batch,      g.stride_a, g.stride_b,
                    g.stride_c, bias,          g.beta == 0.f, align[0],  align[1],     align[2],   0};
  auto it = state.plans.find(key);
  if (it != state.plans.end()) return *it->second;
  cublasLtHandle_t h = handle_for(device);
  auto plan = std::make_unique<Plan>();
  if (!build_plan(*plan, h, g, kind, bias, align)) {
    MODA_CHECK(bias, "matmul: cuBLASLt has no algorithm for ", kind_name(kind), " m=", g.m, " n=", g.n, " k=", g.k,
               " trans_a=", g.trans_a, " trans_b=", g.trans_b, " lda=", g.lda, " ldb=", g.ldb, " ldc=", g.ldc,
               " batch=", g.batch, " alignments(A,B,C)=", align[0], ",", align[1], ",", align[2]);
    plan = std::make_unique<Plan>();  // retry without the bias epilogue; the bias is added by a kernel
    MODA_CHECK(build_plan(*plan, h, g, kind, false, align), "matmul: cuBLASLt has no algorithm for ", kind_name(kind),
               " m=", g.m, " n=", g.n, " k=", g.k);
  }
  return *state.plans.emplace(key, std::move(plan)).first->second;
}

template <typename T>
__device__ __forceinline__ float to_f(T x) {
  return float(x);
}
template <>
__device__ __forceinline__ float to_f(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <typename T>
__device__ __forceinline__ T from_f(float x) {
  return T(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f(float x) {
  return __float2bfloat16_rn(x);
}

// c[z, i, j] = beta * c[z, i, j] (when scale) + bias[j] (when bias): used when k == 0 and when
// no bias-epilogue algorithm exists.
template <typename T>
__global__ void bias_scale_kernel(T* c, const T* bias, int64_t batch, int64_t m, int64_t n, int64_t ldc,
                                  int64_t stride_c, bool scale, float beta) {
  const int64_t total = batch * m * n;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = idx % n, i = (idx / n) % m, z = idx / (n * m);
    T* p = c + z * stride_c + i * ldc + j;
    float v = scale ? (beta == 0.f ? 0.f : beta * to_f(*p)) : to_f(*p);
    if (bias) v += to_f(bias[j]);
    *p = from_f<T>(v);
  }
}

template <typename T>
void launch_bias_scale(T* c, const T* bias, const GemmDesc& g, bool scale, cudaStream_t stream) {
  const int64_t total = g.batch * g.m * g.n;
  const int blocks = int(std::min<int64_t>((total + 255) / 256, 4096));
  bias_scale_kernel<T><<<blocks, 256, 0, stream>>>(c, bias, g.batch, g.m, g.n, g.ldc, g.stride_c, scale, g.beta);
  check_launch("matmul bias/scale");
}

template <typename TIn, typename TOut, typename DOut>
void run(const GemmDesc& desc, Kind kind, const TIn* a, const TIn* b, TOut* c, const TOut* bias, cudaStream_t stream) {
  const GemmDesc g = desc.resolved();
  if (g.m == 0 || g.n == 0) return;
  DOut* dc = reinterpret_cast<DOut*>(c);
  const DOut* dbias = reinterpret_cast<const DOut*>(bias);
  if (g.k == 0) {  // cuBLASLt does not take k = 0: C = beta * C (+ bias)
    launch_bias_scale<DOut>(dc, dbias, g, true, stream);
    return;
  }
  const int device = current_device();
  const uint32_t align[3] = {alignment(a, g.stride_a, in_size(kind), g.batch),
                             alignment(b, g.stride_b, in_size(kind), g.batch),
                             alignment(c, g.stride_c, out_size(kind), g.batch)};
  Plan& p = plan_for(device, g, kind, bias != nullptr, align);
  if (p.bias_epilogue)
    MODA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
                      "matmul");
  cublasLtHandle_t h = handle_for(device);
  void* workspace = workspace_for(device, stream);
  // Bias pointer set above, so the timing runs see the same descriptor as the real run.
  if (!p.tuned && p.candidates.size() > 1 && autotune_enabled() && !capturing(stream))
    tune(p, g, h, a, b, c, workspace, stream);
  const Candidate& cand = p.candidates[p.chosen];
  const float alpha = g.alpha, beta = g.beta;
  MODA_CUBLAS_CHECK(cublasLtMatmul(h, p.desc, &alpha, b, p.la, a, p.lb, &beta, c, p.lc, c, p.lc, &cand.algo, workspace,
                                   cand.workspace, stream),
                    "matmul");
  if (bias && !p.bias_epilogue) launch_bias_scale<DOut>(dc, dbias, g, false, stream);
}

__global__ void fill_ones_kernel(float* p, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = 1.f;
}
__global__ void fill_ones_kernel(__nv_bfloat16* p, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16_rn(1.f);
}

// A ones vector of at least n elements, kept per device and thread, grown by doubling.
template <typename T>
const T* ones(int64_t n, cudaStream_t stream) {
  const bool is_bf16 = sizeof(T) == 2;
  auto& [buf, len] = state.ones[{current_device(), is_bf16}];
  if (len < n) {
    if (buf) {
      MODA_CUDA_CHECK(cudaStreamSynchronize(stream), "bias_backward");  // earlier users may still read it
      MODA_CUDA_CHECK(cudaFree(buf), "bias_backward");
    }
    len = std::max<int64_t>(n, 2 * len);
    MODA_CUDA_CHECK(cudaMalloc(&buf, len * sizeof(T)), "bias_backward ones vector");
    fill_ones_kernel<<<int(std::min<int64_t>((len + 255) / 256, 1024)), 256, 0, stream>>>(static_cast<T*>(buf), len);
    check_launch("bias_backward ones");
  }
  return static_cast<const T*>(buf);
}

}  // namespace

void matmul(const GemmDesc& g, const float* a, const float* b, float* c, const float* bias, cudaStream_t stream) {
  run<float, float, float>(g, Kind::F32, a, b, c, bias, stream);
}
void matmul(const GemmDesc& g, const bf16* a, const bf16* b, bf16* c, const bf16* bias, cudaStream_t stream) {
  run<bf16, bf16, __nv_bfloat16>(g, Kind::BF16, a, b, c, bias, stream);
}
void matmul(const GemmDesc& g, const bf16* a, const bf16* b, float* c, const float* bias, cudaStream_t stream) {
  run<bf16, float, float>(g, Kind::BF16_F32, a, b, c, bias, stream);
}

// dbias (1 x n) += ones (1 x m) @ dy (m x n)
void bias_backward(const float* dy, float* dbias, int64_t m, int64_t n, int64_t ldy, cudaStream_t stream) {
  if (m == 0 || n == 0) return;
  GemmDesc g;
  g.m = 1, g.n = n, g.k = m, g.ldb = ldy, g.beta = 1.f;
  matmul(g, ones<float>(m, stream), dy, dbias, nullptr, stream);
}
void bias_backward(const bf16* dy, float* dbias, int64_t m, int64_t n, int64_t ldy, cudaStream_t stream) {
  if (m == 0 || n == 0) return;
  GemmDesc g;
  g.m = 1, g.n = n, g.k = m, g.ldb = ldy, g.beta = 1.f;
  matmul(g, reinterpret_cast<const bf16*>(ones<__nv_bfloat16>(m, stream)), dy, dbias, nullptr, stream);
}

size_t matmul_plan_cache_size() { return state.plans.size(); }

bool matmul_autotune_enabled() { return autotune_enabled(); }

std::string matmul_plan_report() {
  std::string out;
  char line[512];
  for (const auto& [key, p] : state.plans) {
    const GemmDesc& g = p->g;
    char times[96] = "not tuned";
    if (p->tuned && p->chosen_us >= 0)
      std::snprintf(times, sizeof times, "tuned_us=%.1f first_us=%.1f", p->chosen_us, p->first_us);
    else if (p->tuned)
      std::snprintf(times, sizeof times, "tuning skipped");
    std::snprintf(line, sizeof line,
                  "dev=%d %s m=%lld n=%lld k=%lld ta=%d tb=%d batch=%lld beta0=%d candidates=%zu chosen=%zu %s\n",
                  int(key[0]), kind_name(p->kind), (long long)g.m, (long long)g.n, (long long)g.k, int(g.trans_a),
                  int(g.trans_b), (long long)g.batch, int(g.beta == 0.f), p->candidates.size(), p->chosen, times);
    out += line;
  }
  return out;
}

}  // namespace moda::cuda
