#include "kernels/cpu/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace moda::cpu {

namespace {
void gemm_one(const GemmDesc& g, const float* a, const float* b, float* c) {
  cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans, (blasint)g.m,
              (blasint)g.n, (blasint)g.k, g.alpha, a, (blasint)g.lda, b, (blasint)g.ldb, g.beta, c, (blasint)g.ldc);
}
void gemm_one(const GemmDesc& g, const double* a, const double* b, double* c) {
  cblas_dgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans, (blasint)g.m,
              (blasint)g.n, (blasint)g.k, (double)g.alpha, a, (blasint)g.lda, b, (blasint)g.ldb, (double)g.beta, c,
              (blasint)g.ldc);
}
}  // namespace

template <typename T>
void matmul(const GemmDesc& desc, const T* a, const T* b, T* c) {
  const GemmDesc g = desc.resolved();
  if (g.m == 0 || g.n == 0) return;
  for (int64_t i = 0; i < g.batch; ++i) {
    T* ci = c + i * g.stride_c;
    if (g.k == 0) {  // BLAS may skip the update entirely; define it as C = beta * C (0 when beta = 0)
      for (int64_t r = 0; r < g.m; ++r)
        for (int64_t j = 0; j < g.n; ++j) ci[r * g.ldc + j] = g.beta == 0.f ? T(0) : T(g.beta) * ci[r * g.ldc + j];
      continue;
    }
    gemm_one(g, a + i * g.stride_a, b + i * g.stride_b, ci);
  }
}

template <typename T>
void add_bias(T* c, const T* bias, int64_t m, int64_t n, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] += bias[j];
}

template <typename T>
void bias_backward(const T* dy, T* dbias, int64_t m, int64_t n, int64_t ldy) {
  std::vector<double> acc(n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) acc[j] += dy[i * ldy + j];
  for (int64_t j = 0; j < n; ++j) dbias[j] = T(dbias[j] + acc[j]);
}

template void matmul<float>(const GemmDesc&, const float*, const float*, float*);
template void matmul<double>(const GemmDesc&, const double*, const double*, double*);
template void add_bias<float>(float*, const float*, int64_t, int64_t, int64_t);
template void add_bias<double>(double*, const double*, int64_t, int64_t, int64_t);
template void bias_backward<float>(const float*, float*, int64_t, int64_t, int64_t);
template void bias_backward<double>(const double*, double*, int64_t, int64_t, int64_t);

}  // namespace moda::cpu
