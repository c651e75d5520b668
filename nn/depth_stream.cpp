#include "nn/depth_stream.h"

#include "autograd/function.h"
#include "core/error.h"
#include "kernels/cpu/moda_attention.h"
#include "kernels/moda_attention_shape.h"
#if MODA_HAVE_CUDA
#include "core/stream.h"
#include "kernels/cuda/moda_attention.h"
#endif

namespace moda::nn {

DepthStream::DepthStream(int64_t batch, int64_t tokens, int64_t slots, int64_t kv_heads, int64_t head_dim, DType dtype,
                         Device device)
    : B_(batch), T_(tokens), S_(slots), Hk_(kv_heads), d_(head_dim) {
  MODA_CHECK(batch >= 1 && tokens >= 1 && slots >= 1 && kv_heads >= 1 && head_dim >= 1,
             "DepthStream: every size must be >= 1, got B=", batch, " T=", tokens, " S=", slots, " Hk=", kv_heads,
             " d=", head_dim);
  // Every slot a forward pass reads is written first, so the buffers need no zero fill.
  keys_ = Tensor::empty({B_, T_, S_, Hk_, d_}, dtype, device).set_name("depth_stream.k");
  values_ = Tensor::empty({B_, T_, S_, Hk_, d_}, dtype, device).set_name("depth_stream.v");
}

void DepthStream::allocate_grads() {
  if (grad_keys_.defined()) return;
  grad_keys_ = Tensor::zeros(keys_.shape(), dtype(), device()).set_name("depth_stream.dk");
  grad_values_ = Tensor::zeros(values_.shape(), dtype(), device()).set_name("depth_stream.dv");
}

Tensor& DepthStream::grad_keys() {
  allocate_grads();
  return grad_keys_;
}
Tensor& DepthStream::grad_values() {
  allocate_grads();
  return grad_values_;
}

// --- slot write ---------------------------------------------------------------------------------

static void check_kv(const char* op, const DepthStream& s, const Tensor& t, const char* what) {
  MODA_CHECK(t.defined(), op, ": ", what, " is undefined");
  Shape want{s.batch(), s.tokens(), s.kv_heads(), s.head_dim()};
  MODA_CHECK(t.shape() == want, op, ": ", what, " has shape ", shape_str(t.shape()), ", expected ", shape_str(want),
             " [B, T, Hk, d]");
  MODA_CHECK(t.dtype() == s.dtype() && t.device() == s.device(), op, ": ", what, " is ", t.describe(),
             ", the stream holds ", dtype_name(s.dtype()), " on ", s.device().str());
}

Tensor write_slot(const std::shared_ptr<DepthStream>& stream, int64_t slot, const Tensor& k, const Tensor& v) {
  const char* op = "write_slot";
  MODA_CHECK(stream, op, ": no stream");
  MODA_CHECK(slot >= 0 && slot < stream->slots(), op, ": slot ", slot, " outside [0, ", stream->slots(), ")");
  check_kv(op, *stream, k, "k");
  check_kv(op, *stream, v, "v");
  stream->keys().select(2, slot).copy_(k);
  stream->values().select(2, slot).copy_(v);
  Tensor token = Tensor::empty({0}, k.dtype(), k.device());
  DType kd = k.dtype();
  auto backward = [stream, slot, kd](const std::vector<Tensor>&) -> std::vector<Tensor> {
    // Every reader of this slot has run (each took the token as an input): the slices are final.
    if (!stream->has_grad()) return {Tensor(), Tensor()};  // no reader produced a gradient
    Tensor dk = stream->grad_keys().select(2, slot).contiguous();
    Tensor dv = stream->grad_values().select(2, slot).contiguous();
    if (dk.dtype() != kd) dk = dk.to(kd), dv = dv.to(kd);
    return {dk, dv};
  };
  return record_op("write_slot", {k, v}, {token}, backward, /*run_without_grad=*/true)[0];
}

// --- attention ----------------------------------------------------------------------------------

namespace {

struct Launch {
  ModaAttentionShape shape;
  ModaStrides q, kv_slot, depth;
  int64_t own_offset = 0;  // element offset of own_slot in the stream buffers
};

Launch make_launch(const Tensor& q, const DepthStream& s, int64_t own_slot, int64_t num_depth, bool causal) {
  Launch l;
  l.shape.B = s.batch();
  l.shape.T = s.tokens();
  l.shape.Hq = q.size(2);
  l.shape.Hk = s.kv_heads();
  l.shape.L = num_depth;
  l.shape.d = s.head_dim();
  l.shape.causal = causal;
  l.shape.validate("moda_attention_from_stream");
  l.q = moda_strides_bthd(s.tokens(), q.size(2), s.head_dim());
  l.kv_slot = moda_strides_stream_slot(s.tokens(), s.slots(), s.kv_heads(), s.head_dim());
  l.depth = moda_strides_depth(s.tokens(), s.slots(), s.kv_heads(), s.head_dim());
  l.own_offset = own_slot * s.kv_heads() * s.head_dim();
  return l;
}

template <typename T>
void cpu_forward(const Launch& l, const Tensor& q, const DepthStream& s, Tensor& o, Tensor& lse) {
  const T* K = s.keys().data<T>();
  const T* V = s.values().data<T>();
  const T* dk = l.shape.L > 0 ? K : nullptr;
  const T* dv = l.shape.L > 0 ? V : nullptr;
  cpu::moda_attention_forward<T>(l.shape, q.data<T>(), l.q, K + l.own_offset, l.kv_slot, V + l.own_offset, l.kv_slot,
                                 dk, l.depth, dv, l.depth, o.data<T>(), l.q, lse.data<T>());
}

template <typename T>
void cpu_backward(const Launch& l, const Tensor& q, DepthStream& s, const Tensor& o, const Tensor& lse,
                  const Tensor& dout, Tensor& dq) {
  const T* K = s.keys().data<T>();
  const T* V = s.values().data<T>();
  T* gK = s.grad_keys().data<T>();
  T* gV = s.grad_values().data<T>();
  bool depth = l.shape.L > 0;
  cpu::moda_attention_backward<T>(l.shape, q.data<T>(), l.q, K + l.own_offset, l.kv_slot, V + l.own_offset, l.kv_slot,
                                  depth ? K : nullptr, l.depth, depth ? V : nullptr, l.depth, o.data<T>(), l.q,
                                  lse.data<T>(), dout.data<T>(), l.q, dq.data<T>(), l.q, gK + l.own_offset, l.kv_slot,
                                  gV + l.own_offset, l.kv_slot, depth ? gK : nullptr, l.depth, depth ? gV : nullptr,
                                  l.depth, /*accumulate_kv=*/true, /*accumulate_depth=*/true);
}

#if MODA_HAVE_CUDA
void cuda_forward(const Launch& l, const Tensor& q, const DepthStream& s, Tensor& o, Tensor& lse) {
  const bf16* K = s.keys().data<bf16>();
  const bf16* V = s.values().data<bf16>();
  bool depth = l.shape.L > 0;
  cuda::moda_attention_forward(l.shape, q.data<bf16>(), l.q, K + l.own_offset, l.kv_slot, V + l.own_offset, l.kv_slot,
                               depth ? K : nullptr, l.depth, depth ? V : nullptr, l.depth, o.data<bf16>(), l.q,
                               lse.data<float>(), current_stream());
}

void cuda_backward(const Launch& l, const Tensor& q, DepthStream& s, const Tensor& o, const Tensor& lse,
                   const Tensor& dout, Tensor& dq) {
  const bf16* K = s.keys().data<bf16>();
  const bf16* V = s.values().data<bf16>();
  bf16* gK = s.grad_keys().data<bf16>();
  bf16* gV = s.grad_values().data<bf16>();
  bool depth = l.shape.L > 0;
  // Scratch from the caching allocator (16-byte aligned), released when `ws` goes out of scope.
  size_t bytes = cuda::moda_attention_backward_workspace_bytes(l.shape);
  Tensor ws = Tensor::empty({static_cast<int64_t>((bytes + 3) / 4)}, DType::F32, q.device());
  cuda::moda_attention_backward(l.shape, q.data<bf16>(), l.q, K + l.own_offset, l.kv_slot, V + l.own_offset, l.kv_slot,
                                depth ? K : nullptr, l.depth, depth ? V : nullptr, l.depth, o.data<bf16>(), l.q,
                                lse.data<float>(), dout.data<bf16>(), l.q, dq.data<bf16>(), l.q, gK + l.own_offset,
                                l.kv_slot, gV + l.own_offset, l.kv_slot, depth ? gK : nullptr, l.depth,
                                depth ? gV : nullptr, l.depth, /*accumulate_kv=*/true,
                                /*accumulate_depth=*/true, ws.data_ptr(), current_stream());
}
#endif

}  // namespace

Tensor moda_attention_from_stream(const Tensor& q_in, const std::shared_ptr<DepthStream>& stream, int64_t own_slot,
                                  int64_t num_depth_slots, bool causal, const std::vector<Tensor>& tokens) {
  const char* op = "moda_attention_from_stream";
  MODA_CHECK(stream, op, ": no stream");
  const DepthStream& s = *stream;
  MODA_CHECK(q_in.dim() == 4 && q_in.size(0) == s.batch() && q_in.size(1) == s.tokens() && q_in.size(3) == s.head_dim(),
             op, ": q has shape ", shape_str(q_in.shape()), ", expected [", s.batch(), ", ", s.tokens(), ", Hq, ",
             s.head_dim(), "]");
  MODA_CHECK(q_in.dtype() == s.dtype() && q_in.device() == s.device(), op, ": q is ", q_in.describe(),
             ", the stream holds ", dtype_name(s.dtype()), " on ", s.device().str());
  MODA_CHECK(own_slot >= 0 && own_slot < s.slots(), op, ": own_slot ", own_slot, " outside [0, ", s.slots(), ")");
  MODA_CHECK(num_depth_slots >= 0 && num_depth_slots <= own_slot, op, ": depth slots [0, ", num_depth_slots,
             ") must end at or before the own slot ", own_slot);
  Tensor q = q_in.contiguous();
  Launch l = make_launch(q, s, own_slot, num_depth_slots, causal);
  const int64_t B = s.batch(), T = s.tokens(), Hq = q.size(2);
  Tensor o = Tensor::empty(q.shape(), q.dtype(), q.device());
  Tensor lse;

  if (q.device().is_cpu()) {
    lse = Tensor::empty({B, Hq, T}, q.dtype(), q.device());
    switch (q.dtype()) {
      case DType::F32: cpu_forward<float>(l, q, s, o, lse); break;
      case DType::F64: cpu_forward<double>(l, q, s, o, lse); break;
      default: MODA_FAIL(op, ": CPU supports f32 and f64, got ", q.describe());
    }
  } else {
#if MODA_HAVE_CUDA
    MODA_CHECK(q.dtype() == DType::BF16, op, ": CUDA runs the bf16 kernel, got ", q.describe());
    lse = Tensor::empty({B, Hq, T}, DType::F32, q.device());
    cuda_forward(l, q, s, o, lse);
#else
    MODA_FAIL(op, ": ", q.describe(), " needs CUDA, but moda was built without it");
#endif
  }

  std::vector<Tensor> inputs{q};
  inputs.insert(inputs.end(), tokens.begin(), tokens.end());
  const size_t n_inputs = inputs.size();
  // Saved without graph links: o's node would otherwise own a closure that owns o (a cycle).
  auto backward = [stream, l, q = q.detach(), o = o.detach(), lse,
                   n_inputs](const std::vector<Tensor>& grads) -> std::vector<Tensor> {
    Tensor dout = grads[0].contiguous();
    Tensor dq = Tensor::empty(q.shape(), q.dtype(), q.device());
    if (q.device().is_cpu()) {
      if (q.dtype() == DType::F32)
        cpu_backward<float>(l, q, *stream, o, lse, dout, dq);
      else
        cpu_backward<double>(l, q, *stream, o, lse, dout, dq);
    } else {
#if MODA_HAVE_CUDA
      cuda_backward(l, q, *stream, o, lse, dout, dq);
#endif
    }
    std::vector<Tensor> out(n_inputs);
    out[0] = dq;
    return out;
  };
  return record_op("moda_attention_from_stream", inputs, {o}, backward)[0];
}

// --- per-forward bookkeeping ------------------------------------------------------------------

StreamStep::StreamStep(int64_t batch, int64_t tokens_, int64_t slots, int64_t kv_heads, int64_t head_dim, DType dtype,
                       Device device)
    : stream(std::make_shared<DepthStream>(batch, tokens_, slots, kv_heads, head_dim, dtype, device)), tokens(slots) {}

void StreamStep::write(int64_t slot, const Tensor& k, const Tensor& v) {
  MODA_CHECK(slot >= 0 && slot < stream->slots(), "StreamStep::write: slot ", slot, " outside [0, ", stream->slots(),
             ")");
  MODA_CHECK(!tokens[slot].defined(), "StreamStep::write: slot ", slot, " written twice in one forward pass");
  tokens[slot] = write_slot(stream, slot, k, v);
}

Tensor StreamStep::attend(const Tensor& q, int64_t own_slot, int64_t num_depth, bool causal) const {
  std::vector<Tensor> read;
  auto need = [&](int64_t s) {
    MODA_CHECK(s >= 0 && s < stream->slots() && tokens[s].defined(), "StreamStep::attend: slot ", s,
               " is read before it was written");
    read.push_back(tokens[s]);
  };
  for (int64_t s = 0; s < num_depth; ++s) need(s);
  need(own_slot);
  return moda_attention_from_stream(q, stream, own_slot, num_depth, causal, read);
}

}  // namespace moda::nn
