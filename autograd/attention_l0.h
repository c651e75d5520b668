#pragma once
// Which kernels compute MoDA attention without depth keys (L = 0) on CUDA: every layer of the
// `sequence` variant and layer 0 of every MoDA model. Either ours (kernels/cuda/moda_attention.h)
// or cuDNN's fused SDPA through our wrapper (kernels/cuda/cudnn_sdpa.h), which torch measured at
// 0.6-0.7x flash's time on the H200 (docs/attention-kernels.md). The choice never changes the
// operator, only which kernels evaluate it; autograd/moda_attention_ops.cpp asks here per call.
//
// Modes (process-wide; the trainer sets it from `train.attention_l0`, docs/training.md):
//   auto   the first forward of each shape (B, T, Hq, Hk, d, causal, device) runs both forward +
//          backward pairs on the call's own q, k, v (dout = q), keeps cuDNN only when its o, dq,
//          dk, dv agree with ours (relative L2 < 2e-2: two bf16 kernels) AND it is >= 5 % faster,
//          caches the choice for the process and logs it once. A disagreement or a cuDNN error is
//          logged and falls back to ours. Without cuDNN, auto is ours.
//   moda   ours everywhere.
//   cudnn  cuDNN wherever it supports the call (bf16, d 64 or 128, queries aligned with keys),
//          ours elsewhere (cached decoding); no timing, no check.
#include <string>

#include "core/tensor.h"
#include "kernels/moda_attention_shape.h"

namespace moda::ops {

enum class AttentionL0 { Auto, Moda, Cudnn };

// "auto" | "moda" | "cudnn"; anything else is an error naming `field` and the value.
AttentionL0 parse_attention_l0(const std::string& value, const std::string& field);
const char* attention_l0_name(AttentionL0 mode);

// Sets the mode for every later call. `cudnn` on a CUDA device whose cuDNN cannot run is an error
// that says why (a run asked for cuDNN must not silently train on other kernels).
void set_attention_l0(AttentionL0 mode, Device device);
AttentionL0 attention_l0();

#ifdef MODA_HAVE_CUDA
namespace l0 {

// Whether this L = 0 call runs on cuDNN. q, k, v: the kernel views of the op (bf16 CUDA).
bool use_cudnn(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v);

// cuDNN's forward into o [B,T,Hq,d] and lse [B,Hq,T] fp32 (the same quantity as our kernels').
void cudnn_forward(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                   const Tensor& lse);

// cuDNN's backward: dq overwritten; dk, dv overwritten, or added to when `accumulate` (cuDNN
// only overwrites, so then it writes scratch that is added into dk, dv).
void cudnn_backward(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                    const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                    bool accumulate);

}  // namespace l0
#endif

}  // namespace moda::ops
