#pragma once
// CPU matrix products on OpenBLAS; the descriptor GemmDesc (what C = alpha op(A) op(B) + beta C
// computes, strides, batching) is in kernels/matmul_shape.h, shared with the CUDA backend.
#include <cstdint>

#include "kernels/matmul_shape.h"

namespace moda::cpu {

// OpenBLAS cblas_sgemm / cblas_dgemm per batch entry.
template <typename T>
void matmul(const GemmDesc& g, const T* a, const T* b, T* c);

// c[i, j] += bias[j] for an m x n matrix with row stride ldc (the "+ b" of a linear map).
template <typename T>
void add_bias(T* c, const T* bias, int64_t m, int64_t n, int64_t ldc);

// dbias[j] += sum_i dy[i, j] (accumulates, like every parameter gradient); sums in double.
template <typename T>
void bias_backward(const T* dy, T* dbias, int64_t m, int64_t n, int64_t ldy);

}  // namespace moda::cpu
