#pragma once
// The GEMM descriptor shared by the CPU (OpenBLAS, kernels/cpu/matmul.h) and CUDA (cuBLASLt,
// kernels/cuda/matmul.h) backends. Batched matrix product, row-major:
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]      for b in [0, batch)
// op(A) is m x k (A is stored k x m when trans_a), op(B) is k x n (B is stored n x k when trans_b).
// beta = 1 accumulates into C (weight gradients); beta = 0 overwrites C even if it holds NaN.
// Plain struct, no device code: included by .cpp and .cu files.
#include <algorithm>
#include <cstdint>

#include "core/error.h"

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
  GemmDesc resolved() const {
    GemmDesc g = *this;
    MODA_CHECK(m >= 0 && n >= 0 && k >= 0, "matmul: sizes must be >= 0, got m=", m, " n=", n, " k=", k);
    MODA_CHECK(batch >= 1, "matmul: batch must be >= 1, got ", batch);
    const int64_t a_cols = trans_a ? m : k, a_rows = trans_a ? k : m;
    const int64_t b_cols = trans_b ? k : n, b_rows = trans_b ? n : k;
    // Packed leading dimensions are at least 1 (BLAS requires it even when a size is 0).
    if (g.lda < 0) g.lda = std::max<int64_t>(a_cols, 1);
    if (g.ldb < 0) g.ldb = std::max<int64_t>(b_cols, 1);
    if (g.ldc < 0) g.ldc = std::max<int64_t>(n, 1);
    MODA_CHECK(g.lda >= a_cols && g.lda >= 1, "matmul: lda=", g.lda, " is below the stored row length ", a_cols);
    MODA_CHECK(g.ldb >= b_cols && g.ldb >= 1, "matmul: ldb=", g.ldb, " is below the stored row length ", b_cols);
    MODA_CHECK(g.ldc >= n && g.ldc >= 1, "matmul: ldc=", g.ldc, " is below n=", n);
    if (g.stride_a < 0) g.stride_a = a_rows * g.lda;
    if (g.stride_b < 0) g.stride_b = b_rows * g.ldb;
    if (g.stride_c < 0) g.stride_c = m * g.ldc;
    MODA_CHECK(g.stride_c > 0 || batch == 1, "matmul: stride_c=0 with batch=", batch,
               " would make batch entries overwrite each other");
    return g;
  }
};

}  // namespace moda
