#include "autograd/moda_attention_ops.h"

#include <cstdint>
#include <type_traits>
#include <vector>

#include "autograd/function.h"
#include "core/error.h"
#include "kernels/cpu/moda_attention.h"
#ifdef MODA_HAVE_CUDA
#include "core/stream.h"
#include "kernels/cuda/moda_attention.h"
#endif

namespace moda::ops {

namespace {

const char* kOp = "moda_attention";

// A tensor the kernels can read through strides: innermost dim contiguous and, on CUDA, every
// stride a multiple of 8 elements with a 16-byte aligned start (else a contiguous copy).
Tensor kernel_view(const Tensor& t) {
  bool ok = t.stride(-1) == 1;
  if (t.device().is_cuda()) {
    for (int64_t i = 0; i + 1 < t.dim(); ++i) ok = ok && (t.size(i) == 1 || t.stride(i) % 8 == 0);
    ok = ok && reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  }
  return ok ? t : t.contiguous();
}

ModaStrides bthd(const Tensor& t) { return {t.stride(0), t.stride(1), 0, t.stride(2)}; }
ModaStrides btlhd(const Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}; }

// Everything the kernels need, resolved once for forward and backward.
struct Operands {
  ModaAttentionShape shape;
  Tensor q, k, v, kd, vd;  // kernel-readable views; kd, vd undefined when L == 0
};

Operands resolve(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dk, const Tensor& dv, bool causal) {
  for (const Tensor* t : {&q, &k, &v}) MODA_CHECK(t->defined(), kOp, ": q, k and v must be defined");
  MODA_CHECK(q.dim() == 4 && k.dim() == 4 && k.shape() == v.shape() && q.size(0) == k.size(0) &&
                 q.size(1) == k.size(1) && q.size(3) == k.size(3),
             kOp, ": expected q [B,T,Hq,d], k, v [B,T,Hk,d], got q ", q.describe(), ", k ", k.describe(), ", v ",
             v.describe());
  const bool has_depth = dk.defined() || dv.defined();
  if (has_depth) {
    MODA_CHECK(dk.defined() && dv.defined() && dk.shape() == dv.shape() && dk.dim() == 5 && dk.size(0) == k.size(0) &&
                   dk.size(1) == k.size(1) && dk.size(3) == k.size(2) && dk.size(4) == k.size(3),
               kOp, ": expected depth_k, depth_v [B,T,L,Hk,d] matching k ", k.describe(), ", got ",
               dk.defined() ? dk.describe() : "undefined", " and ", dv.defined() ? dv.describe() : "undefined");
  }
  for (const Tensor* t : {&k, &v, &dk, &dv}) {
    if (!t->defined()) continue;
    check_same_device(kOp, q, *t);
    MODA_CHECK(t->dtype() == q.dtype(), kOp, ": all inputs must share q's dtype ", q.describe(), ", got ",
               t->describe());
  }
  if (q.device().is_cpu())
    check_dtype(kOp, q, {DType::F32, DType::F64}, "q (CPU)");
  else
    check_dtype(kOp, q, {DType::BF16}, "q (CUDA: the fused kernels are bf16)");
  Operands r;
  r.shape.B = q.size(0), r.shape.T = q.size(1), r.shape.Hq = q.size(2), r.shape.Hk = k.size(2), r.shape.d = q.size(3);
  r.shape.L = has_depth ? dk.size(2) : 0;
  r.shape.causal = causal;
  r.shape.validate(kOp);
  r.q = kernel_view(q), r.k = kernel_view(k), r.v = kernel_view(v);
  if (r.shape.L > 0) r.kd = kernel_view(dk), r.vd = kernel_view(dv);
  return r;
}

template <typename T>
const T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

void forward(const Operands& a, Tensor& o, Tensor& lse) {
  const ModaStrides none{};
  const ModaStrides kds = a.kd.defined() ? btlhd(a.kd) : none, vds = a.vd.defined() ? btlhd(a.vd) : none;
  if (a.q.device().is_cpu()) {
    auto run = [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      cpu::moda_attention_forward<T>(a.shape, ptr<T>(a.q), bthd(a.q), ptr<T>(a.k), bthd(a.k), ptr<T>(a.v), bthd(a.v),
                                     ptr<T>(a.kd), kds, ptr<T>(a.vd), vds, o.data<T>(), bthd(o), lse.data<T>());
    };
    a.q.dtype() == DType::F64 ? run((double*)nullptr) : run((float*)nullptr);
    return;
  }
#ifdef MODA_HAVE_CUDA
  cuda::moda_attention_forward(a.shape, ptr<bf16>(a.q), bthd(a.q), ptr<bf16>(a.k), bthd(a.k), ptr<bf16>(a.v), bthd(a.v),
                               ptr<bf16>(a.kd), kds, ptr<bf16>(a.vd), vds, o.data<bf16>(), bthd(o), lse.data<float>(),
                               current_stream());
#else
  MODA_FAIL(kOp, ": CUDA tensors need the CUDA kernels, which this build lacks");
#endif
}

std::vector<Tensor> backward(const Operands& a, const Tensor& o, const Tensor& lse, const Tensor& dout_in) {
  const auto& s = a.shape;
  const Tensor dout = kernel_view(dout_in);
  const Device dev = a.q.device();
  const DType t = a.q.dtype();
  Tensor dq = Tensor::empty(a.q.shape(), t, dev), dk = Tensor::empty(a.k.shape(), t, dev),
         dv = Tensor::empty(a.v.shape(), t, dev), dkd, dvd;
  const ModaStrides none{};
  ModaStrides kds = none, vds = none, dkds = none, dvds = none;
  if (s.L > 0) {
    dkd = Tensor::empty(a.kd.shape(), t, dev), dvd = Tensor::empty(a.vd.shape(), t, dev);
    kds = btlhd(a.kd), vds = btlhd(a.vd), dkds = btlhd(dkd), dvds = btlhd(dvd);
  }
  if (dev.is_cpu()) {
    auto run = [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      cpu::moda_attention_backward<T>(s, ptr<T>(a.q), bthd(a.q), ptr<T>(a.k), bthd(a.k), ptr<T>(a.v), bthd(a.v),
                                      ptr<T>(a.kd), kds, ptr<T>(a.vd), vds, ptr<T>(o), bthd(o), ptr<T>(lse),
                                      ptr<T>(dout), bthd(dout), dq.data<T>(), bthd(dq), dk.data<T>(), bthd(dk),
                                      dv.data<T>(), bthd(dv), s.L > 0 ? dkd.data<T>() : nullptr, dkds,
                                      s.L > 0 ? dvd.data<T>() : nullptr, dvds, false, false);
    };
    t == DType::F64 ? run((double*)nullptr) : run((float*)nullptr);
  } else {
#ifdef MODA_HAVE_CUDA
    MODA_CHECK(dout.dtype() == DType::BF16, kOp, ": gradient of the output must be bf16, got ", dout.describe());
    const int64_t ws_bytes = int64_t(cuda::moda_attention_backward_workspace_bytes(s));
    Tensor ws = Tensor::empty({(ws_bytes + 3) / 4}, DType::F32, dev);
    cuda::moda_attention_backward(
        s, ptr<bf16>(a.q), bthd(a.q), ptr<bf16>(a.k), bthd(a.k), ptr<bf16>(a.v), bthd(a.v), ptr<bf16>(a.kd), kds,
        ptr<bf16>(a.vd), vds, ptr<bf16>(o), bthd(o), ptr<float>(lse), ptr<bf16>(dout), bthd(dout), dq.data<bf16>(),
        bthd(dq), dk.data<bf16>(), bthd(dk), dv.data<bf16>(), bthd(dv), s.L > 0 ? dkd.data<bf16>() : nullptr, dkds,
        s.L > 0 ? dvd.data<bf16>() : nullptr, dvds, false, false, ws.data_ptr(), current_stream());
#else
    MODA_FAIL(kOp, ": CUDA tensors need the CUDA kernels, which this build lacks");
#endif
  }
  return {dq, dk, dv, dkd, dvd};
}

}  // namespace

Tensor moda_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& depth_k, const Tensor& depth_v,
                      bool causal) {
  Operands a = resolve(q, k, v, depth_k, depth_v, causal);
  const Device dev = q.device();
  Tensor o = Tensor::empty(q.shape(), q.dtype(), dev);
  Tensor lse = Tensor::empty({a.shape.B, a.shape.Hq, a.shape.T}, dev.is_cpu() ? q.dtype() : DType::F32, dev);
  forward(a, o, lse);
  // Inputs as given (undefined depth stays undefined: no gradient slot is needed for it).
  std::vector<Tensor> inputs = {q, k, v};
  if (depth_k.defined()) inputs.push_back(depth_k), inputs.push_back(depth_v);
  const bool depth_inputs = depth_k.defined();
  return record_op(kOp, inputs, {o}, [a, o, lse, depth_inputs](const std::vector<Tensor>& g) {
    std::vector<Tensor> grads = backward(a, o, lse, g[0]);
    if (!depth_inputs)
      grads.resize(3);
    else if (a.shape.L == 0)
      grads[3] = Tensor(), grads[4] = Tensor();  // L = 0: nothing to propagate
    return grads;
  })[0];
}

}  // namespace moda::ops
