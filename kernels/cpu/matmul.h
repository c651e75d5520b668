#pragma once
// Batched matrix product, row-major, the way every linear map and attention reference uses it:
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]      for b in [0, batch)
// op(A) is m x k (A is stored k x m when trans_a), op(B) is k x n (B is stored n x k when trans_b).
// beta = 1 accumulates into C (weight gradients); beta = 0 overwrites C even if it holds NaN.
// The descriptor is shared by the CPU (OpenBLAS) and CUDA (cuBLASLt) backends.
#include <cstdint>

namespace moda {

struct GemmDesc {
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  float alpha = 1.f, beta = 0.f;
  int64_t batch = 1;
  // Row strides (elements between consecutive rows as stored); -1 means packed.
  int64_t lda = -1, ldb = -1, ldc = -1;
  // Elements between consecutive batch entries; -1 means packed, 0 broadcasts A or B (shared weight).
  int64_t stride_a = -1, stride_b = -1, stride_c = -1;
  // CUDA fp32 only: let cuBLASLt use TF32 tensor cores (off by default: fp32 means fp32).
  bool allow_tf32 = false;

  // Copy with every -1 replaced by the packed value; throws moda::Error naming the bad field.
  GemmDesc resolved() const;
};

}  // namespace moda

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
