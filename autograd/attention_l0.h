#pragma once
// Which kernels compute the attention over the SEQUENCE keys on CUDA: ours
// (kernels/cuda/moda_attention.h, one fused kernel for sequence + depth keys) or cuDNN's fused SDPA
// through our wrapper (kernels/cuda/cudnn_sdpa.h; 0.57x our forward+backward time at the 125M
// shape on the H200, docs/attention-kernels.md). Without depth keys (L = 0: every layer of the
// `sequence` variant, layer 0 of every MoDA model) cuDNN computes the whole op. With depth keys
// the op is split the way split-KV attention is: cuDNN's softmax over the sequence keys gives o
// and lse, our depth kernel merges the token's L depth keys into that softmax in place; in the
// backward cuDNN, run on the merged o and lse, gives exactly the sequence keys' gradients and
// our depth kernel adds the rest. The choice never changes the operator, only which kernels
// evaluate it; autograd/moda_attention_ops.cpp asks here per call.
//
// Modes (process-wide; the trainer sets it from `train.attention_l0`, docs/training.md):
//   auto   the first forward of each shape (L, B, T, Hq, Hk, d, causal, device) runs both forward
//          + backward pairs on the call's own operands (dout = q; the first sequences only, about
//          16 K tokens, which keeps the tuning's temporaries small), keeps cuDNN only when its o,
//          dq, dk, dv (and depth gradients) agree with ours (relative L2 < 2e-2: two bf16
//          kernels) AND it is >= 5 % faster, caches the choice for the process and logs it once.
//          A disagreement or a cuDNN error is logged and falls back to ours. Without cuDNN, auto
//          is ours.
//   moda   ours everywhere.
//   cudnn  cuDNN wherever it supports the call (bf16, d 64 or 128, queries aligned with keys),
//          ours elsewhere (cached decoding); no timing, no check.
// (The field keeps its first name, from when only L = 0 could use cuDNN.)
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

// Whether this call's sequence keys run on cuDNN. q, k, v, kd, vd: the kernel views of the op
// (bf16 CUDA; kd, vd undefined when L == 0).
bool use_cudnn(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kd,
               const Tensor& vd);

// Our fused kernels (kernels/cuda/moda_attention.h) over sequence and depth keys, with the same
// arguments as the cuDNN pair below: the op's route when use_cudnn() says no.
void ours_forward(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kd,
                  const Tensor& vd, const Tensor& o, const Tensor& lse);
void ours_backward(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kd,
                   const Tensor& vd, const Tensor& o, const Tensor& lse, const Tensor& dout, const Tensor& dq,
                   const Tensor& dk, const Tensor& dv, const Tensor& dkd, const Tensor& dvd, bool accumulate);

// cuDNN's forward over the sequence keys into o [B,T,Hq,d] and lse [B,Hq,T] fp32 (the same
// quantity as our kernels'), then, when L > 0, our depth merge into both (the full MoDA result).
void cudnn_forward(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kd,
                   const Tensor& vd, const Tensor& o, const Tensor& lse);

// The backward of cudnn_forward: dq overwritten; dk, dv overwritten, or added to when
// `accumulate` (cuDNN only overwrites, so then it writes scratch that is added into dk, dv);
// when L > 0 our depth backward adds the depth keys' part of dq and writes (or adds into) dkd, dvd.
void cudnn_backward(const ModaAttentionShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kd,
                    const Tensor& vd, const Tensor& o, const Tensor& lse, const Tensor& dout, const Tensor& dq,
                    const Tensor& dk, const Tensor& dv, const Tensor& dkd, const Tensor& dvd, bool accumulate);

}  // namespace l0
#endif

}  // namespace moda::ops
