#pragma once
// The depth stream: ONE key buffer and ONE value buffer [B, T, S, Hk, d] per forward pass, holding
// every K,V pair the network writes (S slots, laid out by nn::stream_layout). Layers write their
// (RoPE'd) keys and values into their slots in place; layer l's MoDA attention reads its own slot
// as sequence K,V and slots [0, num_depth) as depth K,V through strides, without copies.
//
// Gradients mirror the buffers: dK, dV [B, T, S, Hk, d], zeroed on first use in backward. Each
// attention backward ADDS its sequence and depth gradients into them (the kernels' accumulate
// flags). A slot's gradient is complete once every reader of that slot has run its backward; the
// autograd wiring guarantees that order:
//   write_slot(k, v) returns a zero-size "token" tensor whose node runs even though no gradient
//   reaches it (record_op(..., run_without_grad = true)); its backward hands the slot's slice of
//   dK, dV to k and v. Every attention that reads a slot takes that slot's token as an input (and
//   returns no gradient for it), so the engine runs all readers' backward before the writer's.
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace moda::nn {

class DepthStream {
 public:
  DepthStream(int64_t batch, int64_t tokens, int64_t slots, int64_t kv_heads, int64_t head_dim, DType dtype,
              Device device);

  int64_t batch() const { return B_; }
  int64_t tokens() const { return T_; }
  int64_t slots() const { return S_; }
  int64_t kv_heads() const { return Hk_; }
  int64_t head_dim() const { return d_; }
  DType dtype() const { return keys_.dtype(); }
  Device device() const { return keys_.device(); }

  const Tensor& keys() const { return keys_; }  // [B, T, S, Hk, d]
  const Tensor& values() const { return values_; }
  // Gradient buffers of the same shape and dtype (the CUDA kernel adds into bf16 buffers, with
  // fp32 math per addition); allocated zero-filled on first call.
  Tensor& grad_keys();
  Tensor& grad_values();
  bool has_grad() const { return grad_keys_.defined(); }

 private:
  void allocate_grads();
  int64_t B_, T_, S_, Hk_, d_;
  Tensor keys_, values_, grad_keys_, grad_values_;
};

// Copies k, v [B, T, Hk, d] into `slot` of the stream and returns the slot's token (see above).
// Differentiable: the gradients of k and v are the slot's slices of the stream's gradient buffers.
Tensor write_slot(const std::shared_ptr<DepthStream>& stream, int64_t slot, const Tensor& k, const Tensor& v);

// The per-forward bookkeeping of a model: the stream and the token of every slot written so far.
//
// Training covers the whole stream (first = 0, count = T). Cached decoding (nn/decode_cache.h)
// keeps one stream of capacity T_max for the whole generation and runs each forward pass over the
// positions [first, first + count) after the `first` tokens already cached: writes go to those
// positions, queries sit there (RoPE at absolute positions, see position()), sequence keys are read
// from positions [0, first + count) and depth keys at the query's own position, through
// ops::moda_attention_decode (no graph: decoding runs under NoGradGuard).
struct StreamStep {
  std::shared_ptr<DepthStream> stream;
  std::vector<Tensor> tokens;  // one per slot; undefined until written
  int64_t first = 0;           // position of this pass's first token in the stream
  int64_t count = 0;           // tokens of this pass

  StreamStep(int64_t batch, int64_t tokens, int64_t slots, int64_t kv_heads, int64_t head_dim, DType dtype,
             Device device);
  // Cached decoding: positions [first, first + count) of `cache`, whose positions before `first`
  // hold the K,V of the tokens already run.
  StreamStep(std::shared_ptr<DepthStream> cache, int64_t first, int64_t count);

  bool cached() const { return first > 0 || count < stream->tokens(); }
  int64_t position() const { return first; }  // RoPE position of this pass's token 0

  void write(int64_t slot, const Tensor& k, const Tensor& v);
  // MoDA attention of q [B, T, Hq, d] over the sequence K,V in own_slot and the depth K,V in slots
  // [0, num_depth), read in place through ops::moda_attention_into (autograd/moda_attention_ops.h).
  // Every slot it reads must have been written. Returns o [B, T, Hq, d]; the backward returns dq
  // and adds dK, dV of the slots read into the stream's gradient buffers. Cached: forward only.
  Tensor attend(const Tensor& q, int64_t own_slot, int64_t num_depth, bool causal) const;
};

}  // namespace moda::nn
