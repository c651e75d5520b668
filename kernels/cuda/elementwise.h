#pragma once
// Pointwise arithmetic over n contiguous elements on the GPU (float or bf16 storage, fp32 math).
// Same argument order as kernels/cpu/elementwise.h (outputs first), plus the stream. Out may alias
// an input. 16-byte vector accesses when every pointer is 16-byte aligned, scalar code otherwise.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"

namespace moda::cuda {

template <typename T>
void add(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream);  // float, bf16
template <typename T>
void mul(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream);  // float, bf16
template <typename T>
void scale(T* out, const T* a, double alpha, int64_t n, cudaStream_t stream);  // float, bf16
// y += alpha * x, for gradient accumulation: (TY, TX) = (float, float), (float, bf16), (bf16, bf16).
template <typename TY, typename TX>
void axpy(TY* y, const TX* x, double alpha, int64_t n, cudaStream_t stream);
template <typename T>
void fill(T* out, double value, int64_t n, cudaStream_t stream);  // float, bf16
// out[i] = scale * value[0] with `value` a device scalar (gradient of sum/mean without a host sync).
template <typename T>
void fill(T* out, const float* value, double scale, int64_t n, cudaStream_t stream);

void cast(bf16* out, const float* in, int64_t n, cudaStream_t stream);  // round to nearest even
void cast(float* out, const bf16* in, int64_t n, cudaStream_t stream);

}  // namespace moda::cuda
