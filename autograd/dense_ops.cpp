#include "autograd/dense_ops.h"

#include "autograd/function.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/cpu/attention_reference.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/matmul.h"
#ifdef MODA_HAVE_CUDA
#include "kernels/cuda/attention_reference.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/matmul.h"
#endif

namespace moda::ops {

namespace {

// maybe_unused: a CUDA build calls it on no path.
[[noreturn, maybe_unused]] void no_cuda(const char* op) {
  MODA_FAIL(op, ": CUDA tensors need the CUDA kernels, which this build lacks");
}

void check_float_input(const char* op, const Tensor& t, const char* what) {
  MODA_CHECK(t.defined(), op, ": ", what, " is undefined");
  if (t.device().is_cpu())
    check_dtype(op, t, {DType::F32, DType::F64}, what);
  else
    check_dtype(op, t, {DType::F32, DType::BF16}, what);
}

// c = alpha op(a) op(b) + beta c (+ bias) on contiguous tensors; c is f32 when a, b are bf16 and
// the caller wants fp32 accumulation, otherwise c has their dtype.
void gemm(const GemmDesc& d, const Tensor& a, const Tensor& b, Tensor& c, const Tensor& bias = Tensor()) {
  const DType t = a.dtype();
  if (a.device().is_cpu()) {
    MODA_CHECK(c.dtype() == t, "matmul: CPU output dtype must equal the inputs'");
    if (t == DType::F64) {
      cpu::matmul<double>(d, a.data<double>(), b.data<double>(), c.data<double>());
      if (bias.defined()) cpu::add_bias<double>(c.data<double>(), bias.data<double>(), d.m, d.n, d.n);
    } else {
      cpu::matmul<float>(d, a.data<float>(), b.data<float>(), c.data<float>());
      if (bias.defined()) cpu::add_bias<float>(c.data<float>(), bias.data<float>(), d.m, d.n, d.n);
    }
    return;
  }
#ifdef MODA_HAVE_CUDA
  cudaStream_t s = current_stream();
  if (t == DType::F32)
    cuda::matmul(d, a.data<float>(), b.data<float>(), c.data<float>(), bias.defined() ? bias.data<float>() : nullptr,
                 s);
  else if (c.dtype() == DType::BF16)
    cuda::matmul(d, a.data<bf16>(), b.data<bf16>(), c.data<bf16>(), bias.defined() ? bias.data<bf16>() : nullptr, s);
  else
    cuda::matmul(d, a.data<bf16>(), b.data<bf16>(), c.data<float>(), bias.defined() ? bias.data<float>() : nullptr, s);
#else
  no_cuda("matmul");
#endif
}

// A plain (non-recording) 2-D or batched product, used by the backward passes.
Tensor product(const Tensor& a, const Tensor& b, bool ta, bool tb) { return matmul(a, b, ta, tb); }

Shape with_last(const Shape& lead, std::initializer_list<int64_t> tail) {
  Shape s = lead;
  s.insert(s.end(), tail);
  return s;
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in, bool ta, bool tb) {
  check_float_input("matmul", a_in, "a");
  check_float_input("matmul", b_in, "b");
  check_same_device("matmul", a_in, b_in);
  MODA_CHECK(a_in.dtype() == b_in.dtype(), "matmul: a is ", a_in.describe(), " but b is ", b_in.describe());
  MODA_CHECK(a_in.dim() >= 2 && b_in.dim() >= 2, "matmul: a ", a_in.describe(), " and b ", b_in.describe(),
             " need at least 2 dims");
  const Tensor a = a_in.contiguous(), b = b_in.contiguous();
  const int64_t M = ta ? a.size(-1) : a.size(-2), K = ta ? a.size(-2) : a.size(-1);
  const int64_t Kb = tb ? b.size(-1) : b.size(-2), N = tb ? b.size(-2) : b.size(-1);
  MODA_CHECK(K == Kb, "matmul: inner sizes differ: a ", a.describe(), (ta ? " (transposed)" : ""), ", b ", b.describe(),
             (tb ? " (transposed)" : ""));
  const Shape lead(a.shape().begin(), a.shape().end() - 2);
  const int64_t batch = shape_numel(lead);
  const bool broadcast = b.dim() == 2 && a.dim() > 2;
  MODA_CHECK(b.dim() == 2 || Shape(b.shape().begin(), b.shape().end() - 2) == lead, "matmul: batch dims of a ",
             a.describe(), " and b ", b.describe(), " differ (b may also be 2-D)");
  Tensor c = Tensor::empty(with_last(lead, {M, N}), a.dtype(), a.device());
  GemmDesc d;
  d.m = M, d.n = N, d.k = K, d.trans_a = ta, d.trans_b = tb, d.batch = batch;
  if (broadcast) d.stride_b = 0;
  if (broadcast && !ta) d.m = batch * M, d.batch = 1;  // a shared b: one tall GEMM over all rows
  if (M > 0 && N > 0 && batch > 0) gemm(d, a, b, c);
  const bool need_a = a_in.requires_grad(), need_b = b_in.requires_grad();
  return record_op(
      "matmul", {a_in, b_in}, {c},
      [a, b, ta, tb, broadcast, batch, M, N, K, need_a, need_b](const std::vector<Tensor>& g) {
        const Tensor dc = g[0].contiguous();
        Tensor da, db;
        // C = op(A) op(B):  dop(A) = dC op(B)^T,  dop(B) = op(A)^T dC, written back through the transposes.
        if (need_a) {
          if (!ta)
            da = product(dc, b, false, !tb);
          else if (!broadcast)
            da = product(b, dc, tb, true);
          else  // dA = (dC op(B)^T)^T per batch entry, with the shared B on the right
            da = product(dc, b, false, !tb).transpose(dc.dim() - 2, dc.dim() - 1).contiguous();
        }
        if (need_b) {
          if (!broadcast) {
            db = tb ? product(dc, a, true, ta) : product(a, dc, !ta, false);
          } else if (!ta) {  // sum over the batch = one GEMM over the stacked rows
            const Tensor a2 = a.view({batch * M, K}), dc2 = dc.view({batch * M, N});
            db = tb ? product(dc2, a2, true, false) : product(a2, dc2, true, false);
          } else {  // A stored [K, M] per entry: accumulate entry by entry (fp32 for bf16)
            const bool cpu = a.device().is_cpu();
            Tensor acc = Tensor::zeros(tb ? Shape{N, K} : Shape{K, N}, cpu ? a.dtype() : DType::F32, a.device());
            GemmDesc e;
            e.beta = 1.f;
            if (tb)
              e.m = N, e.n = K, e.k = M, e.trans_a = true, e.trans_b = true;  // dC_i^T A_i^T
            else
              e.m = K, e.n = N, e.k = M;  // A_i dC_i
            for (int64_t i = 0; i < batch; ++i) {
              const Tensor ai = a.view({batch, K, M}).select(0, i), dci = dc.view({batch, M, N}).select(0, i);
              tb ? gemm(e, dci, ai, acc) : gemm(e, ai, dci, acc);
            }
            db = acc.to(a.dtype());
          }
        }
        return std::vector<Tensor>{da, db};
      })[0];
}

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in) {
  check_float_input("linear", x_in, "x");
  check_float_input("linear", w_in, "weight");
  check_same_device("linear", x_in, w_in);
  MODA_CHECK(x_in.dtype() == w_in.dtype(), "linear: x is ", x_in.describe(), " but weight is ", w_in.describe());
  MODA_CHECK(w_in.dim() == 2 && x_in.dim() >= 1 && x_in.size(-1) == w_in.size(1), "linear: x ", x_in.describe(),
             " does not fit weight ", w_in.describe(), " (expected x [..., in], weight [out, in])");
  const int64_t in = w_in.size(1), out = w_in.size(0), rows = x_in.numel() / std::max<int64_t>(in, 1);
  if (bias_in.defined()) {
    check_same_device("linear", x_in, bias_in);
    MODA_CHECK(bias_in.dtype() == x_in.dtype() && bias_in.dim() == 1 && bias_in.size(0) == out, "linear: bias ",
               bias_in.describe(), " must be [", out, "] of the input's dtype");
  }
  const Tensor x = x_in.contiguous(), w = w_in.contiguous(), bias = bias_in.defined() ? bias_in.contiguous() : Tensor();
  Shape out_shape = x.shape();
  out_shape.back() = out;
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  GemmDesc d;
  d.m = rows, d.n = out, d.k = in, d.trans_b = true;
  if (rows > 0 && out > 0) gemm(d, x, w, y, bias);
  const bool need_x = x_in.requires_grad(), need_w = w_in.requires_grad(),
             need_b = bias_in.defined() && bias_in.requires_grad();
  std::vector<Tensor> inputs{x_in, w_in};
  if (bias_in.defined()) inputs.push_back(bias_in);
  return record_op("linear", inputs, {y},
                   [x, w, bias, rows, in, out, need_x, need_w, need_b](const std::vector<Tensor>& g) {
                     const Tensor dy = g[0].contiguous();
                     std::vector<Tensor> grads(bias.defined() ? 3 : 2);
                     if (need_x) {  // dx = dy W
                       Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
                       GemmDesc e;
                       e.m = rows, e.n = in, e.k = out;
                       gemm(e, dy, w, dx);
                       grads[0] = dx;
                     }
                     if (need_w) {  // dW = dy^T x
                       Tensor dw = Tensor::empty(w.shape(), w.dtype(), w.device());
                       GemmDesc e;
                       e.m = out, e.n = in, e.k = rows, e.trans_a = true;
                       gemm(e, dy, x, dw);
                       grads[1] = dw;
                     }
                     if (need_b) {  // db = column sums of dy
                       if (dy.device().is_cpu()) {
                         Tensor db = Tensor::zeros({out}, bias.dtype(), bias.device());
                         if (bias.dtype() == DType::F64)
                           cpu::bias_backward<double>(dy.data<double>(), db.data<double>(), rows, out, out);
                         else
                           cpu::bias_backward<float>(dy.data<float>(), db.data<float>(), rows, out, out);
                         grads[2] = db;
                       } else {
#ifdef MODA_HAVE_CUDA
                         Tensor db = Tensor::zeros({out}, DType::F32, bias.device());
                         if (dy.dtype() == DType::F32)
                           cuda::bias_backward(dy.data<float>(), db.data<float>(), rows, out, out, current_stream());
                         else
                           cuda::bias_backward(dy.data<bf16>(), db.data<float>(), rows, out, out, current_stream());
                         grads[2] = db.to(bias.dtype());
#else
        no_cuda("linear");
#endif
                       }
                     }
                     return grads;
                   })[0];
}

Tensor embedding(const Tensor& table_in, const Tensor& ids_in) {
  check_float_input("embedding", table_in, "table");
  check_same_device("embedding", table_in, ids_in);
  check_dtype("embedding", ids_in, {DType::I32, DType::I64}, "ids");
  MODA_CHECK(table_in.dim() == 2, "embedding: table ", table_in.describe(), " must be [vocab, dim]");
  const Tensor table = table_in.contiguous(), ids = ids_in.contiguous();
  const int64_t V = table.size(0), D = table.size(1), n = ids.numel();
  const bool i64 = ids.dtype() == DType::I64;
  Tensor out = Tensor::empty(with_last(ids.shape(), {D}), table.dtype(), table.device());
  if (table.device().is_cpu()) {
    if (table.dtype() == DType::F64)
      i64 ? cpu::embedding_forward(table.data<double>(), ids.data<int64_t>(), out.data<double>(), n, V, D)
          : cpu::embedding_forward(table.data<double>(), ids.data<int32_t>(), out.data<double>(), n, V, D);
    else
      i64 ? cpu::embedding_forward(table.data<float>(), ids.data<int64_t>(), out.data<float>(), n, V, D)
          : cpu::embedding_forward(table.data<float>(), ids.data<int32_t>(), out.data<float>(), n, V, D);
  } else {
#ifdef MODA_HAVE_CUDA
    cudaStream_t s = current_stream();
    if (table.dtype() == DType::F32)
      i64 ? cuda::embedding_forward(table.data<float>(), ids.data<int64_t>(), out.data<float>(), n, V, D, s)
          : cuda::embedding_forward(table.data<float>(), ids.data<int32_t>(), out.data<float>(), n, V, D, s);
    else
      i64 ? cuda::embedding_forward(table.data<bf16>(), ids.data<int64_t>(), out.data<bf16>(), n, V, D, s)
          : cuda::embedding_forward(table.data<bf16>(), ids.data<int32_t>(), out.data<bf16>(), n, V, D, s);
#else
    no_cuda("embedding");
#endif
  }
  return record_op("embedding", {table_in, ids_in}, {out}, [table, ids, V, D, n, i64](const std::vector<Tensor>& g) {
    const Tensor dout = g[0].contiguous();
    Tensor dtable;
    if (table.device().is_cpu()) {
      dtable = Tensor::zeros({V, D}, table.dtype(), table.device());
      if (table.dtype() == DType::F64)
        i64 ? cpu::embedding_backward(dout.data<double>(), ids.data<int64_t>(), dtable.data<double>(), n, V, D)
            : cpu::embedding_backward(dout.data<double>(), ids.data<int32_t>(), dtable.data<double>(), n, V, D);
      else
        i64 ? cpu::embedding_backward(dout.data<float>(), ids.data<int64_t>(), dtable.data<float>(), n, V, D)
            : cpu::embedding_backward(dout.data<float>(), ids.data<int32_t>(), dtable.data<float>(), n, V, D);
    } else {
#ifdef MODA_HAVE_CUDA
      cudaStream_t s = current_stream();
      Tensor acc = Tensor::zeros({V, D}, DType::F32, table.device());
      if (dout.dtype() == DType::F32)
        i64 ? cuda::embedding_backward(dout.data<float>(), ids.data<int64_t>(), acc.data<float>(), n, V, D, s)
            : cuda::embedding_backward(dout.data<float>(), ids.data<int32_t>(), acc.data<float>(), n, V, D, s);
      else
        i64 ? cuda::embedding_backward(dout.data<bf16>(), ids.data<int64_t>(), acc.data<float>(), n, V, D, s)
            : cuda::embedding_backward(dout.data<bf16>(), ids.data<int32_t>(), acc.data<float>(), n, V, D, s);
      dtable = acc.to(table.dtype());
#else
      no_cuda("embedding");
#endif
    }
    return std::vector<Tensor>{dtable, Tensor()};
  })[0];
}

Tensor cross_entropy(const Tensor& logits_in, const Tensor& targets_in, int64_t ignore_index) {
  check_float_input("cross_entropy", logits_in, "logits");
  check_same_device("cross_entropy", logits_in, targets_in);
  check_dtype("cross_entropy", targets_in, {DType::I32, DType::I64}, "targets");
  MODA_CHECK(logits_in.dim() == 2 && targets_in.numel() == logits_in.size(0), "cross_entropy: logits ",
             logits_in.describe(), " must be [N, V] and targets ", targets_in.describe(), " hold N values");
  const Tensor logits = logits_in.contiguous(), targets = targets_in.contiguous();
  const int64_t N = logits.size(0), V = logits.size(1);
  const bool i64 = targets.dtype() == DType::I64;
  const Device dev = logits.device();
  Tensor mean, lse, count;
  if (dev.is_cpu()) {
    const DType t = logits.dtype();
    Tensor rows = Tensor::empty({N}, t, dev);
    lse = Tensor::empty({N}, t, dev), mean = Tensor::empty({1}, t, dev), count = Tensor::empty({1}, DType::I64, dev);
    auto run = [&](auto* type_tag) {
      using T = std::remove_pointer_t<decltype(type_tag)>;
      i64 ? cpu::cross_entropy_forward(logits.data<T>(), targets.data<int64_t>(), rows.data<T>(), lse.data<T>(),
                                       mean.data<T>(), count.data<int64_t>(), N, V, ignore_index)
          : cpu::cross_entropy_forward(logits.data<T>(), targets.data<int32_t>(), rows.data<T>(), lse.data<T>(),
                                       mean.data<T>(), count.data<int64_t>(), N, V, ignore_index);
    };
    t == DType::F64 ? run((double*)nullptr) : run((float*)nullptr);
  } else {
#ifdef MODA_HAVE_CUDA
    cudaStream_t s = current_stream();
    Tensor rows = Tensor::empty({N}, DType::F32, dev);
    lse = Tensor::empty({N}, DType::F32, dev), mean = Tensor::empty({1}, DType::F32, dev);
    count = Tensor::empty({1}, DType::I64, dev);
    auto run = [&](auto* type_tag) {
      using T = std::remove_pointer_t<decltype(type_tag)>;
      i64 ? cuda::cross_entropy_forward(logits.data<T>(), targets.data<int64_t>(), rows.data<float>(),
                                        lse.data<float>(), mean.data<float>(), count.data<int64_t>(), N, V,
                                        ignore_index, s)
          : cuda::cross_entropy_forward(logits.data<T>(), targets.data<int32_t>(), rows.data<float>(),
                                        lse.data<float>(), mean.data<float>(), count.data<int64_t>(), N, V,
                                        ignore_index, s);
    };
    logits.dtype() == DType::BF16 ? run((bf16*)nullptr) : run((float*)nullptr);
#else
    no_cuda("cross_entropy");
#endif
  }
  return record_op(
      "cross_entropy", {logits_in, targets_in}, {mean},
      [logits, targets, lse, count, N, V, i64, ignore_index](const std::vector<Tensor>& g) {
        Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
        if (logits.device().is_cpu()) {
          auto run = [&](auto* type_tag) {
            using T = std::remove_pointer_t<decltype(type_tag)>;
            const T dloss = T(g[0].item());
            i64 ? cpu::cross_entropy_backward(logits.data<T>(), targets.data<int64_t>(), lse.data<T>(), &dloss,
                                              count.data<int64_t>(), dlogits.data<T>(), N, V, ignore_index)
                : cpu::cross_entropy_backward(logits.data<T>(), targets.data<int32_t>(), lse.data<T>(), &dloss,
                                              count.data<int64_t>(), dlogits.data<T>(), N, V, ignore_index);
          };
          logits.dtype() == DType::F64 ? run((double*)nullptr) : run((float*)nullptr);
        } else {
#ifdef MODA_HAVE_CUDA
          cudaStream_t s = current_stream();
          const Tensor dloss = g[0].to(DType::F32).contiguous();  // stays on the device: no sync
          auto run = [&](auto* type_tag) {
            using T = std::remove_pointer_t<decltype(type_tag)>;
            i64 ? cuda::cross_entropy_backward(logits.data<T>(), targets.data<int64_t>(), lse.data<float>(),
                                               dloss.data<float>(), count.data<int64_t>(), dlogits.data<T>(), N, V,
                                               ignore_index, s)
                : cuda::cross_entropy_backward(logits.data<T>(), targets.data<int32_t>(), lse.data<float>(),
                                               dloss.data<float>(), count.data<int64_t>(), dlogits.data<T>(), N, V,
                                               ignore_index, s);
          };
          logits.dtype() == DType::BF16 ? run((bf16*)nullptr) : run((float*)nullptr);
#else
          no_cuda("cross_entropy");
#endif
        }
        return std::vector<Tensor>{dlogits, Tensor()};
      })[0];
}

Tensor attention_reference(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, bool causal) {
  for (const Tensor* t : {&q_in, &k_in, &v_in}) check_float_input("attention_reference", *t, "q/k/v");
  check_same_device("attention_reference", q_in, k_in);
  check_same_device("attention_reference", q_in, v_in);
  MODA_CHECK(q_in.dim() == 4 && k_in.dim() == 4 && k_in.shape() == v_in.shape() && q_in.dtype() == k_in.dtype() &&
                 q_in.dtype() == v_in.dtype() && q_in.size(0) == k_in.size(0) && q_in.size(1) == k_in.size(1) &&
                 q_in.size(3) == k_in.size(3),
             "attention_reference: expected q [B,T,Hq,d], k, v [B,T,Hk,d] of one dtype, got q ", q_in.describe(),
             ", k ", k_in.describe(), ", v ", v_in.describe());
  const Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  AttentionShape s;
  s.batch = q.size(0), s.seq = q.size(1), s.heads_q = q.size(2), s.heads_kv = k.size(2), s.head_dim = q.size(3);
  s.causal = causal;
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  const DType t = q.dtype();
  if (q.device().is_cpu()) {
    if (t == DType::F64)
      cpu::attention_reference_forward<double>(s, q.data<double>(), k.data<double>(), v.data<double>(),
                                               out.data<double>(), nullptr);
    else
      cpu::attention_reference_forward<float>(s, q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                                              nullptr);
  } else {
#ifdef MODA_HAVE_CUDA
    if (t == DType::F32)
      cuda::attention_reference_forward(s, q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                                        nullptr, current_stream());
    else
      cuda::attention_reference_forward(s, q.data<bf16>(), k.data<bf16>(), v.data<bf16>(), out.data<bf16>(), nullptr,
                                        current_stream());
#else
    no_cuda("attention_reference");
#endif
  }
  return record_op("attention_reference", {q_in, k_in, v_in}, {out}, [q, k, v, s](const std::vector<Tensor>& g) {
    const Tensor dout = g[0].contiguous();
    Tensor dq = Tensor::empty(q.shape(), q.dtype(), q.device()), dk = Tensor::empty(k.shape(), k.dtype(), k.device()),
           dv = Tensor::empty(v.shape(), v.dtype(), v.device());
    const DType t = q.dtype();
    if (q.device().is_cpu()) {
      if (t == DType::F64)
        cpu::attention_reference_backward<double>(s, q.data<double>(), k.data<double>(), v.data<double>(),
                                                  dout.data<double>(), dq.data<double>(), dk.data<double>(),
                                                  dv.data<double>());
      else
        cpu::attention_reference_backward<float>(s, q.data<float>(), k.data<float>(), v.data<float>(),
                                                 dout.data<float>(), dq.data<float>(), dk.data<float>(),
                                                 dv.data<float>());
    } else {
#ifdef MODA_HAVE_CUDA
      if (t == DType::F32)
        cuda::attention_reference_backward(s, q.data<float>(), k.data<float>(), v.data<float>(), dout.data<float>(),
                                           dq.data<float>(), dk.data<float>(), dv.data<float>(), current_stream());
      else
        cuda::attention_reference_backward(s, q.data<bf16>(), k.data<bf16>(), v.data<bf16>(), dout.data<bf16>(),
                                           dq.data<bf16>(), dk.data<bf16>(), dv.data<bf16>(), current_stream());
#else
      no_cuda("attention_reference");
#endif
    }
    return std::vector<Tensor>{dq, dk, dv};
  })[0];
}

}  // namespace moda::ops
