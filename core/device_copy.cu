#include "core/device_copy.h"

#include <cuda_bf16.h>

#include <string>

#include "core/error.h"

namespace moda::device_copy {
namespace {

constexpr int kMaxDims = 8;

// Shape and both stride sets after merging dims that are contiguous in both layouts and dropping
// size-1 dims, so a contiguous copy is one flat loop and a slot write is two dims.
struct Geometry {
  int nd = 0;
  int64_t numel = 1;
  int64_t shape[kMaxDims];
  int64_t src_stride[kMaxDims];
  int64_t dst_stride[kMaxDims];
};

Geometry collapse(const std::vector<int64_t>& shape, const std::vector<int64_t>& ss, const std::vector<int64_t>& ds) {
  Geometry g;
  std::vector<int64_t> sh, s, d;
  for (size_t i = 0; i < shape.size(); ++i) {
    g.numel *= shape[i];
    if (shape[i] == 1) continue;
    if (!sh.empty() && s.back() == ss[i] * shape[i] && d.back() == ds[i] * shape[i]) {
      sh.back() *= shape[i];
      s.back() = ss[i];
      d.back() = ds[i];
    } else {
      sh.push_back(shape[i]);
      s.push_back(ss[i]);
      d.push_back(ds[i]);
    }
  }
  MODA_CHECK(sh.size() <= size_t(kMaxDims), "copy_ on the GPU: at most ", kMaxDims,
             " non-mergeable dims are supported, got ", sh.size());
  g.nd = int(sh.size());
  for (int i = 0; i < g.nd; ++i) {
    g.shape[i] = sh[i];
    g.src_stride[i] = s[i];
    g.dst_stride[i] = d[i];
  }
  return g;
}

// Storage type and conversion through double for each dtype (bf16 kept as raw bits).
template <DType D> struct Elem;
template <> struct Elem<DType::F32> { using T = float; };
template <> struct Elem<DType::F64> { using T = double; };
template <> struct Elem<DType::BF16> { using T = uint16_t; };
template <> struct Elem<DType::I32> { using T = int32_t; };
template <> struct Elem<DType::I64> { using T = int64_t; };
template <> struct Elem<DType::U16> { using T = uint16_t; };

template <DType D> __device__ __forceinline__ double to_double(typename Elem<D>::T v) {
  if constexpr (D == DType::BF16) return double(__uint_as_float(uint32_t(v) << 16));
  else return double(v);
}
template <DType D> __device__ __forceinline__ typename Elem<D>::T from_double(double v) {
  if constexpr (D == DType::BF16) return __bfloat16_as_ushort(__float2bfloat16_rn(float(v)));
  else return static_cast<typename Elem<D>::T>(v);
}

__device__ __forceinline__ void offsets(const Geometry& g, int64_t i, int64_t& so, int64_t& dof) {
  so = 0;
  dof = 0;
  for (int d = g.nd - 1; d >= 0; --d) {
    const int64_t idx = i % g.shape[d];
    i /= g.shape[d];
    so += idx * g.src_stride[d];
    dof += idx * g.dst_stride[d];
  }
}

template <DType S, DType D>
__global__ void copy_kernel(const typename Elem<S>::T* src, typename Elem<D>::T* dst, Geometry g) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < g.numel; i += step) {
    int64_t so, dof;
    offsets(g, i, so, dof);
    if constexpr (S == D) dst[dof] = src[so];
    else dst[dof] = from_double<D>(to_double<S>(src[so]));
  }
}

template <typename Bits>
__global__ void fill_kernel(Bits* dst, Bits value, Geometry g) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < g.numel; i += step) {
    int64_t so, dof;
    offsets(g, i, so, dof);
    dst[dof] = value;
  }
}

int grid_for(int64_t n) {
  int64_t blocks = (n + 255) / 256;
  return int(blocks < 65536 ? blocks : 65536);
}

void check(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) MODA_FAIL(what, ": kernel launch failed: ", cudaGetErrorString(e));
}

template <DType S, DType D>
void launch(const void* src, void* dst, const Geometry& g, cudaStream_t stream) {
  copy_kernel<S, D><<<grid_for(g.numel), 256, 0, stream>>>(static_cast<const typename Elem<S>::T*>(src),
                                                          static_cast<typename Elem<D>::T*>(dst), g);
}

template <DType S>
void dispatch_dst(const void* src, void* dst, DType d, const Geometry& g, cudaStream_t stream) {
  switch (d) {
    case DType::F32: return launch<S, DType::F32>(src, dst, g, stream);
    case DType::F64: return launch<S, DType::F64>(src, dst, g, stream);
    case DType::BF16: return launch<S, DType::BF16>(src, dst, g, stream);
    case DType::I32: return launch<S, DType::I32>(src, dst, g, stream);
    case DType::I64: return launch<S, DType::I64>(src, dst, g, stream);
    case DType::U16: return launch<S, DType::U16>(src, dst, g, stream);
  }
}

}  // namespace

void strided_copy(const void* src, DType src_dtype, const std::vector<int64_t>& src_strides, void* dst,
                  DType dst_dtype, const std::vector<int64_t>& dst_strides, const std::vector<int64_t>& shape,
                  cudaStream_t stream) {
  const Geometry g = collapse(shape, src_strides, dst_strides);
  if (g.numel == 0) return;
  switch (src_dtype) {
    case DType::F32: dispatch_dst<DType::F32>(src, dst, dst_dtype, g, stream); break;
    case DType::F64: dispatch_dst<DType::F64>(src, dst, dst_dtype, g, stream); break;
    case DType::BF16: dispatch_dst<DType::BF16>(src, dst, dst_dtype, g, stream); break;
    case DType::I32: dispatch_dst<DType::I32>(src, dst, dst_dtype, g, stream); break;
    case DType::I64: dispatch_dst<DType::I64>(src, dst, dst_dtype, g, stream); break;
    case DType::U16: dispatch_dst<DType::U16>(src, dst, dst_dtype, g, stream); break;
  }
  check("copy_ (device)");
}

void strided_fill(void* dst, DType dtype, const std::vector<int64_t>& strides, const std::vector<int64_t>& shape,
                  uint64_t pattern, cudaStream_t stream) {
  const Geometry g = collapse(shape, strides, strides);
  if (g.numel == 0) return;
  const int grid = grid_for(g.numel);
  switch (dtype_size(dtype)) {
    case 2: fill_kernel<<<grid, 256, 0, stream>>>(static_cast<uint16_t*>(dst), uint16_t(pattern), g); break;
    case 4: fill_kernel<<<grid, 256, 0, stream>>>(static_cast<uint32_t*>(dst), uint32_t(pattern), g); break;
    case 8: fill_kernel<<<grid, 256, 0, stream>>>(static_cast<uint64_t*>(dst), uint64_t(pattern), g); break;
    default: MODA_FAIL("fill_ (device): unsupported element size ", dtype_size(dtype));
  }
  check("fill_ (device)");
}

}  // namespace moda::device_copy
