#pragma once
// MoDA attention, fused CUDA kernels (bf16 in/out, fp32 accumulation, tensor-core mma.sync).
// The operator, layouts and strides: kernels/moda_attention_shape.h; the design:
// docs/attention-kernels.md. Plain host functions, includable from .cpp files compiled by g++.
//
// Requirements (checked, moda::Error otherwise): d in {64, 128}; G = Hq / Hk <= 32; every pointer
// 16-byte aligned and every stride a multiple of 8 elements (rows are moved in 16-byte pieces);
// scale > 0. T, B, Hk and L (>= 0) are free. Depth pointers may be null when L == 0.
// The forward also serves cached decoding (queries at positions q_offset.. of Tk keys,
// ModaAttentionShape::q_offset; Tk < 2^31); the backward requires shape.aligned().
#include <cuda_runtime_api.h>

#include <cstddef>

#include "core/bf16.h"
#include "kernels/moda_attention_shape.h"

namespace moda::cuda {

// o = softmax(scale * q [K | Kd]^T) [V | Vd]; lse [B, Hq, T] fp32 (natural log of the row sums of
// exp(scale * scores)), saved for the backward pass.
void moda_attention_forward(const ModaAttentionShape& shape, const bf16* q, ModaStrides q_strides, const bf16* k,
                            ModaStrides k_strides, const bf16* v, ModaStrides v_strides, const bf16* depth_k,
                            ModaStrides depth_k_strides, const bf16* depth_v, ModaStrides depth_v_strides, bf16* o,
                            ModaStrides o_strides, float* lse, cudaStream_t stream);

// The depth half of a split evaluation (the sequence half on cuDNN, autograd/attention_l0.h):
// on entry o and lse hold the attention of q over the sequence keys alone (any kernel's, same
// lse convention); on return they hold MoDA's, the L depth keys of each token merged into the
// same softmax. Needs L > 0; k and v are not read.
void moda_attention_forward_depth_merge(const ModaAttentionShape& shape, const bf16* q, ModaStrides q_strides,
                                        const bf16* depth_k, ModaStrides depth_k_strides, const bf16* depth_v,
                                        ModaStrides depth_v_strides, bf16* o, ModaStrides o_strides, float* lse,
                                        cudaStream_t stream);

// Scratch the backward pass needs: fp32 dq accumulator [B, T, Hq, d] and D = rowsum(do * o).
size_t moda_attention_backward_workspace_bytes(const ModaAttentionShape& shape);

// Gradients from dout, o and lse. dq is overwritten; dk, dv are overwritten or, with
// accumulate_kv, added to; d_depth_k, d_depth_v likewise with accumulate_depth (the model adds
// every later layer's depth gradient into one buffer). `workspace` must hold
// moda_attention_backward_workspace_bytes(shape) bytes, 16-byte aligned; when null the function
// takes it from the stream-ordered allocator (cudaMallocAsync) and frees it on the stream.
void moda_attention_backward(const ModaAttentionShape& shape, const bf16* q, ModaStrides q_strides, const bf16* k,
                             ModaStrides k_strides, const bf16* v, ModaStrides v_strides, const bf16* depth_k,
                             ModaStrides depth_k_strides, const bf16* depth_v, ModaStrides depth_v_strides,
                             const bf16* o, ModaStrides o_strides, const float* lse, const bf16* dout,
                             ModaStrides dout_strides, bf16* dq, ModaStrides dq_strides, bf16* dk,
                             ModaStrides dk_strides, bf16* dv, ModaStrides dv_strides, bf16* d_depth_k,
                             ModaStrides d_depth_k_strides, bf16* d_depth_v, ModaStrides d_depth_v_strides,
                             bool accumulate_kv, bool accumulate_depth, void* workspace, cudaStream_t stream);

// The depth half of a split backward: from the full o and lse (MoDA's), the depth keys' part of
// dq is ADDED to dq (which holds the sequence keys' part, e.g. cuDNN's backward run on the same o
// and lse), and d_depth_k, d_depth_v are written or added to as above. k, v are not touched.
void moda_attention_backward_depth(const ModaAttentionShape& shape, const bf16* q, ModaStrides q_strides,
                                   const bf16* depth_k, ModaStrides depth_k_strides, const bf16* depth_v,
                                   ModaStrides depth_v_strides, const bf16* o, ModaStrides o_strides, const float* lse,
                                   const bf16* dout, ModaStrides dout_strides, bf16* dq, ModaStrides dq_strides,
                                   bf16* d_depth_k, ModaStrides d_depth_k_strides, bf16* d_depth_v,
                                   ModaStrides d_depth_v_strides, bool accumulate_depth, void* workspace,
                                   cudaStream_t stream);

}  // namespace moda::cuda
