#include "nn/depth_stream.h"

#include <utility>

#include "autograd/function.h"
#include "autograd/graph.h"
#include "autograd/moda_attention_ops.h"
#include "core/error.h"

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

// --- per-forward bookkeeping ------------------------------------------------------------------

StreamStep::StreamStep(int64_t batch, int64_t tokens_, int64_t slots, int64_t kv_heads, int64_t head_dim, DType dtype,
                       Device device)
    : stream(std::make_shared<DepthStream>(batch, tokens_, slots, kv_heads, head_dim, dtype, device)),
      tokens(slots),
      count(tokens_) {}

StreamStep::StreamStep(std::shared_ptr<DepthStream> cache, int64_t first_, int64_t count_)
    : stream(std::move(cache)), first(first_), count(count_) {
  MODA_CHECK(stream, "StreamStep: no stream");
  MODA_CHECK(first >= 0 && count >= 1 && first + count <= stream->tokens(), "StreamStep: positions [", first, ", ",
             first + count, ") outside the stream's ", stream->tokens(), " tokens");
  tokens.resize(size_t(stream->slots()));
}

void StreamStep::write(int64_t slot, const Tensor& k, const Tensor& v) {
  MODA_CHECK(slot >= 0 && slot < stream->slots(), "StreamStep::write: slot ", slot, " outside [0, ", stream->slots(),
             ")");
  MODA_CHECK(!tokens[slot].defined(), "StreamStep::write: slot ", slot, " written twice in one forward pass");
  if (!cached()) {
    tokens[slot] = write_slot(stream, slot, k, v);
    return;
  }
  // Decoding records no graph: a plain copy into this pass's positions; the token only marks the
  // slot as written.
  MODA_CHECK(!grad_mode_enabled(), "StreamStep::write: cached decoding runs without gradients (NoGradGuard)");
  Shape want{stream->batch(), count, stream->kv_heads(), stream->head_dim()};
  MODA_CHECK(k.shape() == want && v.shape() == want, "StreamStep::write: k ", k.describe(), ", v ", v.describe(),
             ", expected ", shape_str(want), " [B, T, Hk, d]");
  stream->keys().narrow(1, first, count).select(2, slot).copy_(k);
  stream->values().narrow(1, first, count).select(2, slot).copy_(v);
  tokens[slot] = Tensor::empty({0}, stream->dtype(), stream->device());
}

Tensor StreamStep::attend(const Tensor& q, int64_t own_slot, int64_t num_depth, bool causal) const {
  MODA_CHECK(num_depth >= 0 && num_depth <= own_slot, "StreamStep::attend: depth slots [0, ", num_depth,
             ") must end at or before the own slot ", own_slot);
  std::vector<Tensor> read;
  auto need = [&](int64_t s) {
    MODA_CHECK(s >= 0 && s < stream->slots() && tokens[s].defined(), "StreamStep::attend: slot ", s,
               " is read before it was written");
    read.push_back(tokens[s]);
  };
  for (int64_t s = 0; s < num_depth; ++s) need(s);
  need(own_slot);
  // Views of the buffers, read in place: own slot as the sequence K,V, slots [0, num_depth) as depth.
  const Tensor &K = stream->keys(), &V = stream->values();
  if (cached()) {
    MODA_CHECK(causal, "StreamStep::attend: cached decoding is causal");
    const int64_t end = first + count;  // keys of every position so far; depth of this pass's own
    Tensor kd = num_depth > 0 ? K.narrow(1, first, count).narrow(2, 0, num_depth) : Tensor();
    Tensor vd = num_depth > 0 ? V.narrow(1, first, count).narrow(2, 0, num_depth) : Tensor();
    return ops::moda_attention_decode(q, K.narrow(1, 0, end).select(2, own_slot),
                                      V.narrow(1, 0, end).select(2, own_slot), kd, vd, first);
  }
  Tensor depth_k = num_depth > 0 ? K.narrow(2, 0, num_depth) : Tensor();
  Tensor depth_v = num_depth > 0 ? V.narrow(2, 0, num_depth) : Tensor();
  // The same views of the gradient buffers, taken when the backward runs (allocated on first use).
  auto sinks = [stream = stream, own_slot, num_depth] {
    Tensor &dK = stream->grad_keys(), &dV = stream->grad_values();
    return ops::GradSinks{dK.select(2, own_slot), dV.select(2, own_slot),
                          num_depth > 0 ? dK.narrow(2, 0, num_depth) : Tensor(),
                          num_depth > 0 ? dV.narrow(2, 0, num_depth) : Tensor()};
  };
  // The slot tokens order this backward before the slots' writers (see depth_stream.h).
  return ops::moda_attention_into(q, K.select(2, own_slot), V.select(2, own_slot), depth_k, depth_v, causal, sinks,
                                  read);
}

}  // namespace moda::nn
