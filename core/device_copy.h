#pragma once
// On-device strided copy with dtype conversion, and strided fill, for Tensor::copy_ / fill_ when
// a GPU holds the data. One kernel launch, no host staging and no stream synchronisation, so views
// (e.g. a layer's slot of the depth stream) and casts stay on the device. Only built with CUDA.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace moda::device_copy {

// dst[idx] = convert(src[idx]) over every index of `shape`; strides in elements. Any pair of
// dtypes; floats to integers truncate like static_cast. src and dst must be on the current device.
void strided_copy(const void* src, DType src_dtype, const std::vector<int64_t>& src_strides, void* dst, DType dst_dtype,
                  const std::vector<int64_t>& dst_strides, const std::vector<int64_t>& shape, cudaStream_t stream);

// Writes the element bits `pattern` (dtype_size(dtype) bytes, already converted) at every index.
void strided_fill(void* dst, DType dtype, const std::vector<int64_t>& strides, const std::vector<int64_t>& shape,
                  uint64_t pattern, cudaStream_t stream);

}  // namespace moda::device_copy
