#include "autograd/moda_attention_ops.h"

#include <cstdint>
#include <string>
#include <utility>

#include "autograd/dispatch.h"
#include "autograd/function.h"
#include "autograd/graph.h"
#include "autograd/moda_attention_views.h"
#include "core/error.h"
#include "kernels/cpu/moda_attention.h"
#ifdef MODA_HAVE_CUDA
#include "autograd/attention_l0.h"  // which kernels: ours or cuDNN + our depth kernels
#endif

namespace moda::ops {

namespace {

using attention_views::bthd, attention_views::btlhd, attention_views::ptr;

const char* kOp = "moda_attention";
const char* kOpInto = "moda_attention_into";
const char* kOpDecode = "moda_attention_decode";

// Whether the kernels can address `t` through its strides: innermost dim contiguous and, on CUDA,
// every stride a multiple of 8 elements with a 16-byte aligned start (rows move in 16-byte pieces).
bool kernel_addressable(const Tensor& t) {
  bool ok = t.stride(-1) == 1;
  if (t.device().is_cuda()) {
    for (int64_t i = 0; i + 1 < t.dim(); ++i) ok = ok && (t.size(i) == 1 || t.stride(i) % 8 == 0);
    ok = ok && reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  }
  return ok;
}

// An input as the kernels read it: the tensor itself (no copy) when addressable, else a copy.
// Detached (same data): the saved operands need no graph links.
Tensor kernel_view(const Tensor& t) { return (kernel_addressable(t) ? t : t.contiguous()).detach(); }

// Everything the kernels read, resolved once at the forward and saved for the backward.
struct Operands {
  ModaAttentionShape shape;
  Tensor q, k, v, kd, vd;  // kernel-addressable views; kd, vd undefined when L == 0
};

// Where the backward writes: dq is always fresh; dk..dvd are overwritten, or added to when
// `accumulate` (the stream form's sinks). dkd, dvd are undefined when L == 0.
struct GradTargets {
  Tensor dq, dk, dv, dkd, dvd;
  bool accumulate = false;
};

// q_offset > 0 (cached decoding): q holds T tokens at positions [q_offset, q_offset + T) of the
// q_offset + T keys in k, v; the depth tensors hold the T query tokens.
Operands resolve(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dk, const Tensor& dv,
                 bool causal, int64_t q_offset = 0) {
  for (const Tensor* t : {&q, &k, &v}) MODA_CHECK(t->defined(), op, ": q, k and v must be defined");
  MODA_CHECK(q.dim() == 4 && k.dim() == 4 && k.shape() == v.shape() && q.size(0) == k.size(0) &&
                 q_offset + q.size(1) == k.size(1) && q.size(3) == k.size(3),
             op, ": expected q [B,T,Hq,d], k, v [B,", q_offset > 0 ? std::to_string(q_offset) + "+T" : "T",
             ",Hk,d], got q ", q.describe(), ", k ", k.describe(), ", v ", v.describe());
  const bool has_depth = dk.defined() || dv.defined();
  if (has_depth) {
    MODA_CHECK(dk.defined() && dv.defined() && dk.shape() == dv.shape() && dk.dim() == 5 && dk.size(0) == k.size(0) &&
                   dk.size(1) == q.size(1) && dk.size(3) == k.size(2) && dk.size(4) == k.size(3),
               op, ": expected depth_k, depth_v [B,T,L,Hk,d] matching q ", q.describe(), " and k ", k.describe(),
               ", got ", dk.defined() ? dk.describe() : "undefined", " and ",
               dv.defined() ? dv.describe() : "undefined");
  }
  for (const Tensor* t : {&k, &v, &dk, &dv}) {
    if (!t->defined()) continue;
    check_same_device(op, q, *t);
    MODA_CHECK(t->dtype() == q.dtype(), op, ": all inputs must share q's dtype ", q.describe(), ", got ",
               t->describe());
  }
  // The dtypes this op has kernels for, checked before dispatch (which would also admit CUDA f32).
  if (q.device().is_cpu())
    check_dtype(op, q, {DType::F32, DType::F64}, "q (CPU)");
  else
    check_dtype(op, q, {DType::BF16}, "q (CUDA: the fused kernels are bf16)");
  Operands r;
  r.shape.B = q.size(0), r.shape.T = q.size(1), r.shape.Hq = q.size(2), r.shape.Hk = k.size(2), r.shape.d = q.size(3);
  r.shape.L = has_depth ? dk.size(2) : 0;
  r.shape.causal = causal;
  r.shape.q_offset = q_offset, r.shape.Tk = k.size(1);
  r.shape.validate(op);
  r.q = kernel_view(q), r.k = kernel_view(k), r.v = kernel_view(v);
  if (r.shape.L > 0) r.kd = kernel_view(dk), r.vd = kernel_view(dv);
  return r;
}

struct Saved {
  Operands a;
  Tensor o, lse;       // lse [B, Hq, T]: q's dtype on the CPU, f32 on CUDA
  bool cudnn = false;  // sequence keys on CUDA through cuDNN (autograd/attention_l0.h): its backward too
};

Saved forward(Operands a) {
  const Device dev = a.q.device();
  const ModaAttentionShape& s = a.shape;
  Tensor o = Tensor::empty(a.q.shape(), a.q.dtype(), dev);
  Tensor lse = Tensor::empty({s.B, s.Hq, s.T}, dev.is_cpu() ? a.q.dtype() : DType::F32, dev);
  bool cudnn = false;
  dispatch(
      kOp, a.q,
      [&](auto tag) {
        using T = decltype(tag);
        cpu::moda_attention_forward<T>(s, ptr<T>(a.q), bthd(a.q), ptr<T>(a.k), bthd(a.k), ptr<T>(a.v), bthd(a.v),
                                       ptr<T>(a.kd), btlhd(a.kd), ptr<T>(a.vd), btlhd(a.vd), o.data<T>(), bthd(o),
                                       lse.data<T>());
      },
      [&](auto) {  // bf16 only (resolve checked)
        MODA_IF_CUDA({
          cudnn = l0::use_cudnn(s, a.q, a.k, a.v, a.kd, a.vd);
          (cudnn ? l0::cudnn_forward : l0::ours_forward)(s, a.q, a.k, a.v, a.kd, a.vd, o, lse);
        });
      });
  return Saved{std::move(a), o, lse, cudnn};
}

// The one backward of both forms: dq from dout, and dk, dv, d_depth into `g` (see GradTargets).
void backward(const Saved& sv, const Tensor& dout_in, const GradTargets& g) {
  const Operands& a = sv.a;
  const ModaAttentionShape& s = a.shape;
  const Tensor dout = kernel_view(dout_in);
  MODA_CHECK(dout.dtype() == a.q.dtype() && dout.shape() == a.q.shape(), kOp, ": gradient of the output must be ",
             dtype_name(a.q.dtype()), " ", shape_str(a.q.shape()), ", got ", dout.describe());
  dispatch(
      kOp, a.q,
      [&](auto tag) {
        using T = decltype(tag);
        cpu::moda_attention_backward<T>(s, ptr<T>(a.q), bthd(a.q), ptr<T>(a.k), bthd(a.k), ptr<T>(a.v), bthd(a.v),
                                        ptr<T>(a.kd), btlhd(a.kd), ptr<T>(a.vd), btlhd(a.vd), ptr<T>(sv.o), bthd(sv.o),
                                        ptr<T>(sv.lse), ptr<T>(dout), bthd(dout), ptr<T>(g.dq), bthd(g.dq),
                                        ptr<T>(g.dk), bthd(g.dk), ptr<T>(g.dv), bthd(g.dv), ptr<T>(g.dkd), btlhd(g.dkd),
                                        ptr<T>(g.dvd), btlhd(g.dvd), g.accumulate, g.accumulate);
      },
      [&](auto) {  // bf16 only (resolve checked)
        MODA_IF_CUDA((sv.cudnn ? l0::cudnn_backward : l0::ours_backward)(
            s, a.q, a.k, a.v, a.kd, a.vd, sv.o, sv.lse, dout, g.dq, g.dk, g.dv, g.dkd, g.dvd, g.accumulate));
      });
}

Tensor empty_like(const Tensor& t) { return t.defined() ? Tensor::empty(t.shape(), t.dtype(), t.device()) : Tensor(); }

// A sink must match its input and be written in place: no fallback copy is possible.
void check_sink(const Tensor& sink, const Tensor& input, const char* what) {
  MODA_CHECK(sink.defined(), kOpInto, ": the gradient sink for ", what, " is undefined");
  MODA_CHECK(sink.shape() == input.shape() && sink.dtype() == input.dtype() && sink.device() == input.device(), kOpInto,
             ": the gradient sink for ", what, " is ", sink.describe(), ", expected ", input.describe());
  MODA_CHECK(kernel_addressable(sink), kOpInto, ": the gradient sink for ", what, " (", sink.describe(),
             ") has a layout the kernels cannot write through (see autograd/moda_attention_ops.h)");
}

}  // namespace

Tensor moda_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& depth_k, const Tensor& depth_v,
                      bool causal) {
  Saved sv = forward(resolve(kOp, q, k, v, depth_k, depth_v, causal));
  Tensor o = sv.o.detach();  // the returned output gets the graph link; the saved one must not (a cycle)
  // Inputs as given (undefined depth stays undefined: no gradient slot is needed for it).
  std::vector<Tensor> inputs = {q, k, v};
  if (depth_k.defined()) inputs.push_back(depth_k), inputs.push_back(depth_v);
  const size_t n_inputs = inputs.size();
  return record_op(kOp, inputs, {o}, [sv = std::move(sv), n_inputs](const std::vector<Tensor>& g) {
    const Operands& a = sv.a;
    GradTargets t{empty_like(a.q), empty_like(a.k), empty_like(a.v), empty_like(a.kd), empty_like(a.vd), false};
    backward(sv, g[0], t);
    std::vector<Tensor> grads = {t.dq, t.dk, t.dv, t.dkd, t.dvd};  // dkd, dvd undefined when L == 0
    grads.resize(n_inputs);
    return grads;
  })[0];
}

Tensor moda_attention_into(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& depth_k,
                           const Tensor& depth_v, bool causal, GradSinksFn sinks, const std::vector<Tensor>& ordering) {
  MODA_CHECK(bool(sinks), kOpInto, ": no gradient sinks given");
  for (const Tensor* t : {&k, &v, &depth_k, &depth_v})
    MODA_CHECK(!t->defined() || !t->requires_grad(), kOpInto,
               ": k, v, depth_k and depth_v get their gradients through the sinks and must not require grad");
  Saved sv = forward(resolve(kOpInto, q, k, v, depth_k, depth_v, causal));
  Tensor o = sv.o.detach();  // the returned output gets the graph link; the saved one must not (a cycle)
  std::vector<Tensor> inputs{q};
  inputs.insert(inputs.end(), ordering.begin(), ordering.end());
  const size_t n_inputs = inputs.size();
  auto bw = [sv = std::move(sv), sinks = std::move(sinks), n_inputs](const std::vector<Tensor>& g) {
    const Operands& a = sv.a;
    GradSinks s = sinks();
    check_sink(s.k, a.k, "k");
    check_sink(s.v, a.v, "v");
    if (a.shape.L > 0) check_sink(s.depth_k, a.kd, "depth_k"), check_sink(s.depth_v, a.vd, "depth_v");
    GradTargets t{
        empty_like(a.q), s.k, s.v, a.shape.L > 0 ? s.depth_k : Tensor(), a.shape.L > 0 ? s.depth_v : Tensor(), true};
    backward(sv, g[0], t);
    std::vector<Tensor> grads(n_inputs);  // the ordering inputs get none
    grads[0] = t.dq;
    return grads;
  };
  return record_op(kOpInto, inputs, {o}, std::move(bw))[0];
}

Tensor moda_attention_decode(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& depth_k,
                             const Tensor& depth_v, int64_t q_offset) {
  MODA_CHECK(q_offset >= 0, kOpDecode, ": q_offset must be >= 0, got ", q_offset);
  for (const Tensor* t : {&q, &k, &v, &depth_k, &depth_v})
    MODA_CHECK(!t->defined() || !grad_mode_enabled() || !t->requires_grad(), kOpDecode,
               ": inference only (no backward); run it under NoGradGuard or on tensors that do not require grad");
  return forward(resolve(kOpDecode, q, k, v, depth_k, depth_v, /*causal=*/true, q_offset)).o;
}

}  // namespace moda::ops
