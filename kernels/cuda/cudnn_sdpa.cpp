// cuDNN fused scaled-dot-product attention (flash attention) through the cuDNN 9 backend API.
//
// Design. cuDNN has no "attention" call: its runtime-fusion engines recognise particular graphs of
// backend operations (matmul, pointwise, reduction, reshape) and compile one fused kernel for them.
// Only the patterns that cudnn-frontend emits are recognised, so the graphs below mirror the
// frontend's lowering of its SDPA nodes (include/cudnn_frontend/node/
// scaled_dot_product_flash_attention.h, softmax.h, diagonal_band_mask.h and
// utils/attn_score_modifiers.h, v1.x): the same ops in the same order, the same logical dims
// [B, H, S, D] with our strides, the same data types (bf16 I/O, fp32 compute and intermediates,
// bf16 where the frontend casts P and dS for the second matmuls), and the scale as a by-value fp32
// tensor [1,1,1,1]. K (and in the backward V) enters transposed, [B, Hk, D, S]. GQA is expressed
// by K/V having Hk < Hq heads (matmul broadcast); the backward sums dK, dV over the G query heads
// with a reduction, as the frontend does.
//
// Forward (training: stats are an output):
//   S  = matmul(Q, K^T)                           fp32 [B,Hq,Sq,Skv]
//   S  = S * scale                                pointwise MUL, scale by value
//   causal: r = GEN_INDEX(S, axis 2), c = GEN_INDEX(S, axis 3) (int32), m = CMP_GE(r, c) (bool),
//           S = BINARY_SELECT(S, -inf, m)         (the frontend's diagonal-band mask for cuDNN < 9.21;
//                                                  -inf is float lowest() before 9.10)
//   M  = reduce MAX(S) [B,Hq,Sq,1]; E = EXP(S - M); Z = reduce ADD(E)
//   Stats = M + LOG(Z)                            fp32 [B,Hq,Sq,1], the caller's lse [B,Hq,Tq]
//   P  = E / Z                                    bf16 virtual
//   O  = matmul(P, V)                             bf16
// Backward:
//   Dsum = reduce ADD(dO * O) * 1                 fp32 [B,Hq,Sq,1], non-virtual, in our workspace
//   S  = matmul(Q, K^T) * scale - Stats; causal mask as above; E = EXP(S)   (= P)
//   dV = matmul(reshape(E) [B,Hq,Skv,Sq] bf16, dO)  (GQA: bf16 [B,Hq,Skv,D] then reduce ADD to Hk)
//   dS = (matmul(dO, V^T) - Dsum) * E * scale
//   dK = matmul(reshape(dS) bf16, Q)                (GQA: as dV)
//   dQacc = matmul(dS, reshape(K^T) = K)          fp32 [B,Hq,Sq,D], non-virtual, in our workspace
//   dQ = IDENTITY(dQacc)                          bf16
// (cuDNN >= 9.6 initialises dQacc itself; we require 9.0+ but zero it before 9.6 like the frontend.)
//
// Caching. One plan per (direction, device, shape, strides, causal, scale, pointer alignment):
// operation graph, heuristics (CUDNN_HEUR_MODE_A, then B), the first engine config whose execution
// plan finalises, and its workspace size; kept per calling thread like kernels/cuda/matmul.cu, with
// one cuDNN handle per device and one growing workspace per (device, stream). Per call only the
// variant pack (pointers) is created. Pointers and the two by-value scalars change freely.
//
// Validation (H200, 2026-12-03, cuDNN 9.14): the forward and dV matched the float64 reference; dQ and dK
// did not until the "* 1" node above was added (that fix has not yet run on a GPU).
#include "kernels/cuda/cudnn_sdpa.h"

#include <cmath>
#include <limits>
#include <string>

#include "core/cuda_check.h"
#include "core/error.h"

#ifdef MODA_HAVE_CUDNN
#include <cudnn.h>

#include <array>
#include <map>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>
#endif

namespace moda::cuda {

double CudnnSdpaParams::softmax_scale() const { return scale != 0.0 ? scale : 1.0 / std::sqrt(double(d)); }

#ifndef MODA_HAVE_CUDNN

bool cudnn_sdpa_available(std::string* why) {
  if (why) *why = "this build has no cuDNN (libcudnn or cudnn.h not found at configure time)";
  return false;
}
void cudnn_sdpa_forward(const CudnnSdpaParams&, cudaStream_t) {
  MODA_FAIL("cudnn_sdpa_forward: this build has no cuDNN");
}
void cudnn_sdpa_backward(const CudnnSdpaParams&, cudaStream_t) {
  MODA_FAIL("cudnn_sdpa_backward: this build has no cuDNN");
}

#else

namespace {

void check_cudnn(cudnnStatus_t status, const char* call, const std::string& what) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  char last[1024] = {0};
  cudnnGetLastErrorString(last, sizeof last);
  MODA_FAIL("cuDNN error in ", what, ": ", call, " failed: ", cudnnGetErrorString(status), " (", int(status), ")",
            last[0] ? "; cuDNN says: " : "", last);
}
#define MODA_CUDNN_CHECK(call, what) check_cudnn((call), #call, (what))

// UIDs of the tensors the caller supplies (variant pack); virtual tensors count up from 100.
enum Uid : int64_t {
  kQ = 1,
  kK,
  kV,
  kO,
  kStats,
  kScale,
  kDO,
  kDQ,
  kDK,
  kDV,
  kNegInf,
  kSoftmaxSum,
  kDQAccum,
  kOne,
};

// One backend descriptor, destroyed with its owner.
class Desc {
 public:
  Desc(cudnnBackendDescriptorType_t type, const std::string& what) : what_(what) {
    MODA_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d_), what_);
  }
  ~Desc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }
  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count, const void* value) {
    MODA_CUDNN_CHECK(cudnnBackendSetAttribute(d_, name, type, count, value), what_);
  }
  void set_desc(cudnnBackendAttributeName_t name, const Desc& other) {
    cudnnBackendDescriptor_t o = other.get();
    set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &o);
  }
  void finalize() { MODA_CUDNN_CHECK(cudnnBackendFinalize(d_), what_); }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
  std::string what_;
};

using Dims = std::vector<int64_t>;

// Builds one operation graph: owns its tensor and operation descriptors.
class GraphBuilder {
 public:
  explicit GraphBuilder(std::string what) : what_(std::move(what)) {}

  const Desc& tensor(int64_t uid, cudnnDataType_t type, const Dims& dims, const Dims& strides, bool is_virtual,
                     bool by_value = false, int64_t alignment = 16) {
    auto t = std::make_unique<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR, what_ + " (tensor " + std::to_string(uid) + ")");
    t->set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    t->set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, int64_t(dims.size()), dims.data());
    t->set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, int64_t(strides.size()), strides.data());
    t->set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    t->set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
    t->set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
    if (by_value) t->set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
    t->finalize();
    descs_.push_back(std::move(t));
    return *descs_.back();
  }
  const Desc& virt(cudnnDataType_t type, const Dims& dims, const Dims& strides) {
    return tensor(next_uid_++, type, dims, strides, true);
  }

  // y = mode(x[, b[, t]]); compute type `prec`; axis for GEN_INDEX.
  void pointwise(cudnnPointwiseMode_t mode, const Desc& x, const Desc* b, const Desc* t, const Desc& y,
                 cudnnDataType_t prec = CUDNN_DATA_FLOAT, int64_t axis = -1) {
    auto pw = std::make_unique<Desc>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, what_ + " (pointwise descriptor)");
    pw->set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    pw->set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (axis >= 0) pw->set(CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    pw->finalize();
    auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR,
                                     what_ + " (pointwise op " + std::to_string(int(mode)) + ")");
    op->set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, *pw);
    op->set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
    if (b) op->set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b);
    if (t) op->set_desc(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, *t);
    op->set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
    op->finalize();
    descs_.push_back(std::move(pw));
    add_op(std::move(op));
  }

  void reduction(cudnnReduceTensorOp_t mode, const Desc& x, const Desc& y) {
    auto r = std::make_unique<Desc>(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, what_ + " (reduction descriptor)");
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    r->set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode);
    r->set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    r->finalize();
    auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, what_ + " (reduction op)");
    op->set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x);
    op->set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y);
    op->set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, *r);
    op->finalize();
    descs_.push_back(std::move(r));
    add_op(std::move(op));
  }

  void matmul(const Desc& a, const Desc& b, const Desc& c) {
    auto m = std::make_unique<Desc>(CUDNN_BACKEND_MATMUL_DESCRIPTOR, what_ + " (matmul descriptor)");
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    m->set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    m->finalize();
    auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, what_ + " (matmul op)");
    op->set_desc(CUDNN_ATTR_OPERATION_MATMUL_ADESC, a);
    op->set_desc(CUDNN_ATTR_OPERATION_MATMUL_BDESC, b);
    op->set_desc(CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
    op->set_desc(CUDNN_ATTR_OPERATION_MATMUL_DESC, *m);
    op->finalize();
    descs_.push_back(std::move(m));
    add_op(std::move(op));
  }

  void reshape(const Desc& x, const Desc& y) {
    auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, what_ + " (reshape op)");
    op->set_desc(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x);
    op->set_desc(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y);
    op->finalize();
    add_op(std::move(op));
  }

  // Finalises the operation graph; the builder must outlive it (it owns the tensors).
  std::unique_ptr<Desc> finalize(cudnnHandle_t handle) {
    auto g = std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, what_ + " (operation graph)");
    std::vector<cudnnBackendDescriptor_t> ops;
    for (auto& o : ops_) ops.push_back(o->get());
    g->set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(ops.size()), ops.data());
    g->set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    g->finalize();
    return g;
  }

  const std::string& what() const { return what_; }

 private:
  void add_op(std::unique_ptr<Desc> op) { ops_.push_back(std::move(op)); }
  std::string what_;
  int64_t next_uid_ = 100;
  std::vector<std::unique_ptr<Desc> > descs_, ops_;
};

// Largest power of two <= 16 dividing the address: the tensor's BYTE_ALIGNMENT (part of the key).
int64_t alignment_of(const void* p) {
  const uint64_t bits = reinterpret_cast<uintptr_t>(p);
  int64_t a = 16;
  while (a > 1 && bits % uint64_t(a) != 0) a /= 2;
  return a;
}

// Logical [B, H, S, D] strides of a [B, T, H, d] tensor; transposed: [B, H, D, S].
Dims bhsd(const ModaStrides& s) { return {s.batch, s.head, s.token, 1}; }
Dims bhds(const ModaStrides& s) { return {s.batch, s.head, 1, s.token}; }

struct Plan {
  std::unique_ptr<GraphBuilder> builder;  // owns the tensors the graph refers to
  std::unique_ptr<Desc> graph, plan;
  int64_t workspace = 0;  // cuDNN's own bytes
};

using Key = std::array<int64_t, 48>;

struct ThreadState {
  std::map<int, cudnnHandle_t> handles;
  std::map<std::pair<int, cudaStream_t>, std::pair<void*, size_t> > workspaces;
  std::map<Key, std::unique_ptr<Plan> > plans;
  ~ThreadState() {
    plans.clear();
    for (auto& [k, w] : workspaces) cudaFree(w.first);
    for (auto& [d, h] : handles) cudnnDestroy(h);
  }
};
thread_local ThreadState state;

int current_device(const char* op) {
  int d = 0;
  MODA_CUDA_CHECK(cudaGetDevice(&d), op);
  return d;
}

cudnnHandle_t handle_for(int device, const std::string& what) {
  auto it = state.handles.find(device);
  if (it != state.handles.end()) return it->second;
  cudnnHandle_t h = nullptr;
  MODA_CUDNN_CHECK(cudnnCreate(&h), what);
  state.handles[device] = h;
  return h;
}

void* workspace_for(int device, cudaStream_t stream, size_t bytes, const char* op) {
  auto& w = state.workspaces[std::make_pair(device, stream)];
  if (w.second >= bytes) return w.first;
  if (w.first) {
    MODA_CUDA_CHECK(cudaStreamSynchronize(stream), op);  // the old buffer may still be in use
    MODA_CUDA_CHECK(cudaFree(w.first), op);
    w = {nullptr, 0};
  }
  MODA_CUDA_CHECK(cudaMalloc(&w.first, bytes), op);
  w.second = bytes;
  return w.first;
}

int64_t version() { return int64_t(cudnnGetVersion()); }

// The frontend masks with lowest() before cuDNN 9.10 and with -inf from 9.10 on.
float negative_inf() {
  return version() < 91000 ? std::numeric_limits<float>::lowest() : -std::numeric_limits<float>::infinity();
}

std::string describe(const char* dir, const CudnnSdpaParams& p) {
  std::ostringstream s;
  s << "cudnn_sdpa_" << dir << " (B=" << p.B << " Tq=" << p.Tq << " Tk=" << p.Tk << " Hq=" << p.Hq << " Hk=" << p.Hk
    << " d=" << p.d << " causal=" << p.causal << ", cuDNN " << version() << ")";
  return s.str();
}

void validate(const CudnnSdpaParams& p, bool backward, const std::string& what) {
  MODA_CHECK(p.B >= 1 && p.Tq >= 1 && p.Tk >= 1, what, ": B, Tq and Tk must be >= 1");
  MODA_CHECK(p.d == 64 || p.d == 128, what, ": head dim d must be 64 or 128");
  MODA_CHECK(p.Hk >= 1 && p.Hq >= p.Hk && p.Hq % p.Hk == 0, what, ": Hq must be a positive multiple of Hk");
  MODA_CHECK(p.q && p.k && p.v && p.o && p.stats, what, ": q, k, v, o and stats must be set");
  MODA_CHECK(p.softmax_scale() > 0, what, ": scale must be > 0");
  if (backward) {
    MODA_CHECK(p.Tq == p.Tk, what, ": the backward needs Tq == Tk");
    MODA_CHECK(p.dout && p.dq && p.dk && p.dv, what, ": dout, dq, dk and dv must be set");
  }
}

// The (at most 16) heuristic engine configs for `mode`, best first.
std::vector<std::unique_ptr<Desc> > engine_configs(const Desc& graph, cudnnBackendHeurMode_t mode,
                                                   const std::string& what) {
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, what + " (heuristics)");
  cudnnBackendDescriptor_t g = graph.get();
  heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g);
  heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  heur.finalize();
  int64_t count = 0;
  MODA_CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                            &count, nullptr),
                   what + " (heuristic result count)");
  count = std::min<int64_t>(count, 16);
  std::vector<std::unique_ptr<Desc> > cfgs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    cfgs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, what + " (engine config)"));
    raw.push_back(cfgs.back()->get());
  }
  int64_t got = 0;
  if (count > 0)
    MODA_CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                              count, &got, raw.data()),
                     what + " (heuristic results)");
  cfgs.resize(size_t(std::min(got, count)));
  return cfgs;
}

// Heuristics mode A, then B; the first config whose execution plan finalises wins.
void make_plan(Plan& plan, cudnnHandle_t handle, const std::string& what) {
  std::string tried;
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_B}) {
    std::vector<std::unique_ptr<Desc> > cfgs;
    try {
      cfgs = engine_configs(*plan.graph, mode, what);
    } catch (const Error& e) {
      tried += std::string(" [heuristics mode ") + (mode == CUDNN_HEUR_MODE_A ? "A" : "B") + ": " + e.what() + "]";
      continue;
    }
    for (size_t i = 0; i < cfgs.size(); ++i) {
      auto ep = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, what + " (execution plan)");
      ep->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
      ep->set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, *cfgs[i]);
      const cudnnStatus_t st = cudnnBackendFinalize(ep->get());
      if (st != CUDNN_STATUS_SUCCESS) {
        char last[512] = {0};
        cudnnGetLastErrorString(last, sizeof last);
        tried += std::string(" [mode ") + (mode == CUDNN_HEUR_MODE_A ? "A" : "B") + " config " + std::to_string(i) +
                 ": " + cudnnGetErrorString(st) + (last[0] ? std::string(" ") + last : std::string()) + "]";
        continue;
      }
      int64_t ws = 0;
      MODA_CUDNN_CHECK(cudnnBackendGetAttribute(ep->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                                                1, nullptr, &ws),
                       what + " (workspace size)");
      plan.plan = std::move(ep);
      plan.workspace = ws;
      return;
    }
    if (cfgs.empty()) tried += std::string(" [mode ") + (mode == CUDNN_HEUR_MODE_A ? "A" : "B") + ": no configs]";
  }
  MODA_FAIL(what, ": no cuDNN engine config finalises for this graph;", tried);
}

Key make_key(int dir, int device, const CudnnSdpaParams& p) {
  Key k{};
  size_t i = 0;
  auto put = [&](int64_t v) { k[i++] = v; };
  auto put_st = [&](const ModaStrides& s) { put(s.batch), put(s.token), put(s.head); };
  put(dir), put(device), put(p.B), put(p.Tq), put(p.Tk), put(p.Hq), put(p.Hk), put(p.d), put(p.causal);
  put_st(p.q_strides), put_st(p.k_strides), put_st(p.v_strides), put_st(p.o_strides);
  put(alignment_of(p.q)), put(alignment_of(p.k)), put(alignment_of(p.v)), put(alignment_of(p.o));
  put(alignment_of(p.stats));
  if (dir == 1) {
    put_st(p.dout_strides), put_st(p.dq_strides), put_st(p.dk_strides), put_st(p.dv_strides);
    put(alignment_of(p.dout)), put(alignment_of(p.dq)), put(alignment_of(p.dk)), put(alignment_of(p.dv));
  }
  return k;
}

const Desc& scalar(GraphBuilder& g, int64_t uid) {
  return g.tensor(uid, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
}

// Causal mask on the score tensor `s` (dims `sd`, strides `ss`): the frontend's diagonal-band
// mask with right bound 0, top-left aligned (row >= col kept).
const Desc& causal_mask(GraphBuilder& g, const Desc& s, const Dims& sd, const Dims& ss, const Desc& neg_inf) {
  const Desc& row = g.virt(CUDNN_DATA_INT32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, s, nullptr, nullptr, row, CUDNN_DATA_FLOAT, 2);
  const Desc& col = g.virt(CUDNN_DATA_INT32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, s, nullptr, nullptr, col, CUDNN_DATA_FLOAT, 3);
  const Desc& keep = g.virt(CUDNN_DATA_BOOLEAN, sd, ss);
  g.pointwise(CUDNN_POINTWISE_CMP_GE, row, &col, nullptr, keep, CUDNN_DATA_BOOLEAN);
  const Desc& out = g.virt(CUDNN_DATA_FLOAT, sd, ss);
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, s, &neg_inf, &keep, out);
  return out;
}

// The caller's tensors both graphs read alike: Q, K (entering transposed, [B, Hk, D, Skv]), O,
// the stats [B, Hq, Sq, 1] and the by-value scale.
struct SharedInputs {
  const Desc &Q, &KT, &O, &stats, &scale;
};

SharedInputs declare_shared_inputs(GraphBuilder& g, const CudnnSdpaParams& p) {
  const int64_t b = p.B, h = p.Hq, hk = p.Hk, s = p.Tq, skv = p.Tk, d = p.d;
  const auto bf = CUDNN_DATA_BFLOAT16;
  const Desc& Q = g.tensor(kQ, bf, {b, h, s, d}, bhsd(p.q_strides), false, false, alignment_of(p.q));
  const Desc& KT = g.tensor(kK, bf, {b, hk, d, skv}, bhds(p.k_strides), false, false, alignment_of(p.k));
  const Desc& O = g.tensor(kO, bf, {b, h, s, d}, bhsd(p.o_strides), false, false, alignment_of(p.o));
  const Desc& stats =
      g.tensor(kStats, CUDNN_DATA_FLOAT, {b, h, s, 1}, {h * s, s, 1, 1}, false, false, alignment_of(p.stats));
  return {Q, KT, O, stats, scalar(g, kScale)};
}

void build_forward(Plan& plan, const CudnnSdpaParams& p, cudnnHandle_t handle, const std::string& what) {
  plan.builder = std::make_unique<GraphBuilder>(what);
  GraphBuilder& g = *plan.builder;
  const int64_t b = p.B, h = p.Hq, hk = p.Hk, s = p.Tq, skv = p.Tk, d = p.d;
  const auto bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const auto [Q, KT, O, stats, scale] = declare_shared_inputs(g, p);
  const Desc& V = g.tensor(kV, bf, {b, hk, skv, d}, bhsd(p.v_strides), false, false, alignment_of(p.v));
  const Dims rd = {b, h, s, 1}, rs = {h * s, s, 1, 1};

  const Dims sd = {b, h, s, skv}, ss = {h * s * skv, s * skv, skv, 1};
  const Desc& s0 = g.virt(f32, sd, ss);
  g.matmul(Q, KT, s0);
  const Desc* last = &g.virt(f32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_MUL, s0, &scale, nullptr, *last);
  if (p.causal) last = &causal_mask(g, *last, sd, ss, scalar(g, kNegInf));
  // softmax with stats (frontend softmax.h order: max, sub, exp, sum, log, add, div)
  const Desc& mx = g.virt(f32, rd, rs);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, *last, mx);
  const Desc& sub = g.virt(f32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_SUB, *last, &mx, nullptr, sub);
  const Desc& ex = g.virt(f32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_EXP, sub, nullptr, nullptr, ex);
  const Desc& sum = g.virt(f32, rd, rs);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, ex, sum);
  const Desc& lg = g.virt(f32, rd, rs);
  g.pointwise(CUDNN_POINTWISE_LOG, sum, nullptr, nullptr, lg);
  g.pointwise(CUDNN_POINTWISE_ADD, mx, &lg, nullptr, stats);
  const Desc& P = g.virt(bf, sd, ss);  // bmm2 takes P in the I/O type
  g.pointwise(CUDNN_POINTWISE_DIV, ex, &sum, nullptr, P);
  g.matmul(P, V, O);
  plan.graph = g.finalize(handle);
}

void build_backward(Plan& plan, const CudnnSdpaParams& p, cudnnHandle_t handle, const std::string& what) {
  plan.builder = std::make_unique<GraphBuilder>(what);
  GraphBuilder& g = *plan.builder;
  const int64_t b = p.B, h = p.Hq, hk = p.Hk, s = p.Tq, skv = p.Tk, d = p.d;
  const auto bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const auto [Q, KT, O, stats, scale] = declare_shared_inputs(g, p);
  const Desc& VT = g.tensor(kV, bf, {b, hk, d, skv}, bhds(p.v_strides), false, false, alignment_of(p.v));
  const Desc& dO = g.tensor(kDO, bf, {b, h, s, d}, bhsd(p.dout_strides), false, false, alignment_of(p.dout));
  const Dims rd = {b, h, s, 1}, rs = {h * s, s, 1, 1};
  const Desc& dQ = g.tensor(kDQ, bf, {b, h, s, d}, bhsd(p.dq_strides), false, false, alignment_of(p.dq));
  const Desc& dK = g.tensor(kDK, bf, {b, hk, skv, d}, bhsd(p.dk_strides), false, false, alignment_of(p.dk));
  const Desc& dV = g.tensor(kDV, bf, {b, hk, skv, d}, bhsd(p.dv_strides), false, false, alignment_of(p.dv));
  const Desc& softmax_sum = g.tensor(kSoftmaxSum, f32, rd, rs, false);
  const Desc& dq_accum = g.tensor(kDQAccum, f32, {b, h, s, d}, {h * s * d, s * d, d, 1}, false);

  // softmax_sum = rowsum(dO * O) * 1. The frontend always ends this chain with a multiply by the
  // inverse dropout scale (1 without dropout); the engine's pattern expects that node, and without
  // it the fused kernel computed dV right but dQ and dK as if softmax_sum were 0 (H200, 2026-12-03).
  const Desc& doo = g.virt(f32, {b, h, s, d}, {h * s * d, s * d, h * d, 1});
  g.pointwise(CUDNN_POINTWISE_MUL, dO, &O, nullptr, doo);
  const Desc& dsum = g.virt(f32, rd, rs);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, doo, dsum);
  g.pointwise(CUDNN_POINTWISE_MUL, dsum, &scalar(g, kOne), nullptr, softmax_sum);

  // P = exp(scale * Q K^T - stats), masked
  const Dims sd = {b, h, s, skv}, ss = {h * s * skv, s * skv, skv, 1};
  const Desc& s0 = g.virt(f32, sd, ss);
  g.matmul(Q, KT, s0);
  const Desc& s1 = g.virt(f32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_MUL, s0, &scale, nullptr, s1);
  const Desc* last = &g.virt(f32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_SUB, s1, &stats, nullptr, *last);
  if (p.causal) last = &causal_mask(g, *last, sd, ss, scalar(g, kNegInf));
  const Desc& ex = g.virt(f32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_EXP, *last, nullptr, nullptr, ex);

  // dV = P^T dO (summed over the G query heads of each KV head)
  const Dims td = {b, h, skv, s}, ts = {h * s * skv, s * skv, 1, skv};
  const Dims fd = {b, h, skv, d}, fs = {h * skv * d, skv * d, d, 1};
  // x^T y into `out` [B, Hk, Skv, D]: x [B, Hq, Sq, Skv] viewed transposed in bf16; with GQA the
  // Hq-head product is summed down to the Hk heads by a reduction (as the frontend lowers it).
  auto transposed_product_over_groups = [&](const Desc& x, const Desc& y, const Desc& out) {
    const Desc& xt = g.virt(bf, td, ts);
    g.reshape(x, xt);
    if (h == hk) return g.matmul(xt, y, out);
    const Desc& full = g.virt(bf, fd, fs);
    g.matmul(xt, y, full);
    g.reduction(CUDNN_REDUCE_TENSOR_ADD, full, out);
  };
  transposed_product_over_groups(ex, dO, dV);

  // dS = (dO V^T - softmax_sum) * P * scale
  const Desc& dp = g.virt(f32, sd, ss);
  g.matmul(dO, VT, dp);
  const Desc& dp1 = g.virt(f32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_SUB, dp, &softmax_sum, nullptr, dp1);
  const Desc& dp2 = g.virt(f32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_MUL, dp1, &ex, nullptr, dp2);
  const Desc& ds = g.virt(f32, sd, ss);
  g.pointwise(CUDNN_POINTWISE_MUL, dp2, &scale, nullptr, ds);

  // dK = dS^T Q (summed over the G query heads)
  transposed_product_over_groups(ds, Q, dK);

  // dQ = dS K, through the fp32 accumulator
  const Desc& kr = g.virt(f32, {b, hk, skv, d}, bhsd(p.k_strides));
  g.reshape(KT, kr);
  g.matmul(ds, kr, dq_accum);
  g.pointwise(CUDNN_POINTWISE_IDENTITY, dq_accum, nullptr, nullptr, dQ);
  plan.graph = g.finalize(handle);
}

Plan& plan_for(int dir, const CudnnSdpaParams& p, int device, cudnnHandle_t handle, const std::string& what) {
  const Key key = make_key(dir, device, p);
  auto it = state.plans.find(key);
  if (it != state.plans.end()) return *it->second;
  auto plan = std::make_unique<Plan>();
  if (dir == 0)
    build_forward(*plan, p, handle, what);
  else
    build_backward(*plan, p, handle, what);
  make_plan(*plan, handle, what);
  return *state.plans.emplace(key, std::move(plan)).first->second;
}

void execute(const Plan& plan, cudnnHandle_t handle, const std::vector<int64_t>& uids, const std::vector<void*>& ptrs,
             void* workspace, const std::string& what) {
  Desc vp(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, what + " (variant pack)");
  vp.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(uids.size()), uids.data());
  vp.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(ptrs.size()), ptrs.data());
  vp.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  vp.finalize();
  MODA_CUDNN_CHECK(cudnnBackendExecute(handle, plan.plan->get(), vp.get()), what);
}

size_t round_up(size_t x) { return (x + 255) / 256 * 256; }

}  // namespace

bool cudnn_sdpa_available(std::string* why) {
  auto no = [&](const std::string& r) {
    if (why) *why = r;
    return false;
  };
  const int64_t v = version();
  if (v < 90000) return no("cuDNN " + std::to_string(v) + " is older than 9.0");
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) return no("no CUDA device");
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
    return no("cannot query the current device");
  if (major < 8) return no("device is sm_" + std::to_string(major) + "x; cuDNN fused attention needs sm_80+");
  try {
    handle_for(dev, "cudnn_sdpa_available");
  } catch (const Error& e) {
    return no(e.what());
  }
  if (why) *why = "cuDNN " + std::to_string(v);
  return true;
}

void cudnn_sdpa_forward(const CudnnSdpaParams& p, cudaStream_t stream) {
  const std::string what = describe("forward", p);
  validate(p, false, what);
  const int device = current_device("cudnn_sdpa_forward");
  cudnnHandle_t handle = handle_for(device, what);
  const Plan& plan = plan_for(0, p, device, handle, what);
  MODA_CUDNN_CHECK(cudnnSetStream(handle, stream), what);
  float scale = float(p.softmax_scale()), neg_inf = negative_inf();
  std::vector<int64_t> uids = {kQ, kK, kV, kO, kStats, kScale};
  std::vector<void*> ptrs = {
      const_cast<bf16*>(p.q), const_cast<bf16*>(p.k), const_cast<bf16*>(p.v), p.o, p.stats, &scale};
  if (p.causal) uids.push_back(kNegInf), ptrs.push_back(&neg_inf);
  void* ws = plan.workspace > 0 ? workspace_for(device, stream, size_t(plan.workspace), "cudnn_sdpa_forward") : nullptr;
  execute(plan, handle, uids, ptrs, ws, what);
}

void cudnn_sdpa_backward(const CudnnSdpaParams& p, cudaStream_t stream) {
  const std::string what = describe("backward", p);
  validate(p, true, what);
  const int device = current_device("cudnn_sdpa_backward");
  cudnnHandle_t handle = handle_for(device, what);
  const Plan& plan = plan_for(1, p, device, handle, what);
  MODA_CUDNN_CHECK(cudnnSetStream(handle, stream), what);
  // Workspace: [cuDNN's | softmax_sum fp32 [B,Hq,Tq] | dq accumulator fp32 [B,Hq,Tq,d]].
  const size_t engine = round_up(size_t(plan.workspace));
  const size_t sum_bytes = round_up(size_t(p.B * p.Hq * p.Tq) * 4);
  const size_t acc_bytes = size_t(p.B * p.Hq * p.Tq * p.d) * 4;
  char* ws = static_cast<char*>(workspace_for(device, stream, engine + sum_bytes + acc_bytes, "cudnn_sdpa_backward"));
  void* softmax_sum = ws + engine;
  void* dq_accum = ws + engine + sum_bytes;
  if (version() < 90600) MODA_CUDA_CHECK(cudaMemsetAsync(dq_accum, 0, acc_bytes, stream), what.c_str());
  float scale = float(p.softmax_scale()), neg_inf = negative_inf(), one = 1.0f;
  std::vector<int64_t> uids = {kQ, kK, kV, kO, kDO, kStats, kScale, kDQ, kDK, kDV, kSoftmaxSum, kDQAccum, kOne};
  std::vector<void*> ptrs = {const_cast<bf16*>(p.q),
                             const_cast<bf16*>(p.k),
                             const_cast<bf16*>(p.v),
                             p.o,
                             const_cast<bf16*>(p.dout),
                             p.stats,
                             &scale,
                             p.dq,
                             p.dk,
                             p.dv,
                             softmax_sum,
                             dq_accum,
                             &one};
  if (p.causal) uids.push_back(kNegInf), ptrs.push_back(&neg_inf);
  execute(plan, handle, uids, ptrs, plan.workspace > 0 ? ws : nullptr, what);
}

#endif  // MODA_HAVE_CUDNN

}  // namespace moda::cuda
