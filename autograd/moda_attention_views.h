#pragma once
// How autograd hands tensors to the MoDA attention kernels (kernels/moda_attention_shape.h): a data
// pointer (null for an undefined tensor: no depth keys) plus element strides. Shared by the op
// (moda_attention_ops.cpp) and the cuDNN routing (attention_l0.cpp).
#include "core/tensor.h"
#include "kernels/moda_attention_shape.h"

namespace moda::ops::attention_views {

// [B, T, H, d]
inline ModaStrides bthd(const Tensor& t) { return {t.stride(0), t.stride(1), 0, t.stride(2)}; }

// [B, T, L, H, d] (depth keys and their gradients); empty strides when undefined.
inline ModaStrides btlhd(const Tensor& t) {
  return t.defined() ? ModaStrides{t.stride(0), t.stride(1), t.stride(2), t.stride(3)} : ModaStrides{};
}

template <typename T>
T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace moda::ops::attention_views
