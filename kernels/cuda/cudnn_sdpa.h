#pragma once
// Causal/non-causal GQA attention without depth keys (MoDA's L = 0) through cuDNN's fused
// scaled-dot-product attention, via our own thin wrapper over the cuDNN 9 backend (graph) API.
// The graphs it builds and what is cached: kernels/cuda/cudnn_sdpa.cpp; docs/attention-kernels.md.
// Plain host functions, includable from .cpp files compiled by g++.
//
// Built in every CUDA build. Without cuDNN at configure time (MODA_HAVE_CUDNN undefined)
// cudnn_sdpa_available() returns false and the other functions throw moda::Error.
//
// Layouts as the MoDA kernels (kernels/moda_attention_shape.h): q, o, dout, dq [B, Tq, Hq, d];
// k, v, dk, dv [B, Tk, Hk, d]; every tensor a pointer plus element strides (batch, token, head;
// ModaStrides::slot unused), d contiguous. stats [B, Hq, Tq] fp32 contiguous: the natural-log
// log-sum-exp of the scaled scores, the same quantity as our kernels' lse. bf16 in and out.
// Supported here: d in {64, 128}, Hq a multiple of Hk; the backward needs Tq == Tk.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "core/bf16.h"
#include "kernels/moda_attention_shape.h"

namespace moda::cuda {

struct CudnnSdpaParams {
  int64_t B = 1, Tq = 0, Tk = 0, Hq = 1, Hk = 1, d = 0;
  double scale = 0.0;  // softmax scale; 0 means 1 / sqrt(d)
  bool causal = true;  // top-left aligned: query t sees keys 0..t
  const bf16* q = nullptr;
  ModaStrides q_strides;
  const bf16* k = nullptr;
  ModaStrides k_strides;
  const bf16* v = nullptr;
  ModaStrides v_strides;
  bf16* o = nullptr;  // written by the forward, read by the backward
  ModaStrides o_strides;
  float* stats = nullptr;  // [B, Hq, Tq]: written by the forward, read by the backward
  // Backward only.
  const bf16* dout = nullptr;
  ModaStrides dout_strides;
  bf16* dq = nullptr;
  ModaStrides dq_strides;
  bf16* dk = nullptr;  // overwritten (not accumulated)
  ModaStrides dk_strides;
  bf16* dv = nullptr;
  ModaStrides dv_strides;

  double softmax_scale() const;
};

// True when this build has cuDNN, the library reports version >= 9.0 and a handle can be created,
// and the current device is sm_80 or newer. `why`, when given, receives the reason for false.
bool cudnn_sdpa_available(std::string* why = nullptr);

// o = softmax(scale q k^T [causal mask]) v and stats. Builds the graph once per shape, strides and
// pointer alignment (cached per thread), then executes it on `stream`.
void cudnn_sdpa_forward(const CudnnSdpaParams& p, cudaStream_t stream);

// dq, dk, dv from q, k, v, o, dout and stats. Workspace (cuDNN's plus the fp32 dq accumulator and
// rowsum(do * o)) is kept per thread, device and stream and grows on demand.
void cudnn_sdpa_backward(const CudnnSdpaParams& p, cudaStream_t stream);

}  // namespace moda::cuda
