#pragma once
// Batched row-major GEMM on cuBLASLt (see kernels/matmul_shape.h for GemmDesc's meaning):
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]  (+ bias[j] broadcast over rows, when given)
// Storage pairs: f32 -> f32 (pure fp32 unless desc.allow_tf32), bf16 -> bf16, bf16 -> f32 (weight
// gradients accumulated in fp32 with beta = 1). All accumulate in fp32 (CUBLAS_COMPUTE_32F).
// Per device and calling thread: one cuBLASLt handle, a 32 MiB workspace per stream (allocated once),
// and a cache of plans (descriptors + heuristic algorithms) keyed by shape, strides, types and alignment.
// A plan keeps up to 8 heuristic candidates; unless MODA_GEMM_AUTOTUNE=0, its first use outside
// graph capture times them on the caller's stream and keeps the fastest (docs/benchmarks-dense.md).
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "core/bf16.h"
#include "kernels/matmul_shape.h"

namespace moda::cuda {

// bias (may be null) has n elements of C's type, added through the cuBLASLt bias epilogue.
void matmul(const GemmDesc& g, const float* a, const float* b, float* c, const float* bias, cudaStream_t stream);
void matmul(const GemmDesc& g, const bf16* a, const bf16* b, bf16* c, const bf16* bias, cudaStream_t stream);
void matmul(const GemmDesc& g, const bf16* a, const bf16* b, float* c, const float* bias, cudaStream_t stream);

// dbias[j] += sum_i dy[i, j] over an m x n matrix with row stride ldy; fp32 accumulation through a
// GEMM with a ones vector (deterministic). dy f32 or bf16, dbias f32.
void bias_backward(const float* dy, float* dbias, int64_t m, int64_t n, int64_t ldy, cudaStream_t stream);
void bias_backward(const bf16* dy, float* dbias, int64_t m, int64_t n, int64_t ldy, cudaStream_t stream);

// Number of cached plans for the calling thread (for tests: repeated shapes must not grow it).
size_t matmul_plan_cache_size();

// Whether plans are autotuned (MODA_GEMM_AUTOTUNE is not "0"; read once per process).
bool matmul_autotune_enabled();

// One line per cached plan of the calling thread: device, kind, m, n, k, ta, tb, batch, beta0
// (beta == 0), candidates (heuristic results kept), chosen (0 = the heuristic's first pick) and
// the timing: "tuned_us=T first_us=F" (per launch, chosen vs first pick), "not tuned" or
// "tuning skipped" (no scratch memory for a beta != 0 plan).
std::string matmul_plan_report();

}  // namespace moda::cuda
