#include "core/device_copy.h"

#include <cuda_bf16.h>

#include <cstring>
#include <string>

#include "core/cuda_check.h"
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
template <DType D>
struct Elem;
template <>
struct Elem<DType::F32> {
  using T = float;
};
template <>
struct Elem<DType::F64> {
  using T = double;
};
template <>
struct Elem<DType::BF16> {
  using T = uint16_t;
};
template <>
struct Elem<DType::I32> {
  using T = int32_t;
};
template <>
struct Elem<DType::I64> {
  using T = int64_t;
};
template <>
struct Elem<DType::U16> {
  using T = uint16_t;
};

template <DType D>
__device__ __forceinline__ double to_double(typename Elem<D>::T v) {
  if constexpr (D == DType::BF16)
    return double(__uint_as_float(uint32_t(v) << 16));
  else
    return double(v);
}
template <DType D>
__device__ __forceinline__ typename Elem<D>::T from_double(double v) {
  if constexpr (D == DType::BF16)
    return __bfloat16_as_ushort(__float2bfloat16_rn(float(v)));
  else
    return static_cast<typename Elem<D>::T>(v);
}

// Element offsets of flat index i in both layouts. Idx is 32-bit when every offset fits, which
// makes the divisions several times cheaper than 64-bit ones.
template <typename Idx>
__device__ __forceinline__ void offsets(const Geometry& g, Idx i, Idx& so, Idx& dof) {
  so = 0;
  dof = 0;
  for (int d = g.nd - 1; d >= 0; --d) {
    const Idx n = Idx(g.shape[d]);
    const Idx idx = i % n;
    i /= n;
    so += idx * Idx(g.src_stride[d]);
    dof += idx * Idx(g.dst_stride[d]);
  }
}

// One thread per element (grid-stride): `op(src_offset, dst_offset)` does the element's work.
template <typename Idx, typename Op>
__global__ void indexed_kernel(Geometry g, Op op) {
  const Idx step = Idx(gridDim.x) * blockDim.x;
  for (Idx i = Idx(blockIdx.x) * blockDim.x + threadIdx.x; i < Idx(g.numel); i += step) {
    Idx so, dof;
    offsets<Idx>(g, i, so, dof);
    op(so, dof);
  }
}

template <DType S, DType D>
struct Convert {
  const typename Elem<S>::T* src;
  typename Elem<D>::T* dst;
  __device__ void operator()(int64_t so, int64_t dof) const { dst[dof] = from_double<D>(to_double<S>(src[so])); }
};

// Same-dtype copy of raw elements of `Bits` (2 to 16 bytes: see widen()).
template <typename Bits>
struct CopyBits {
  const Bits* src;
  Bits* dst;
  __device__ void operator()(int64_t so, int64_t dof) const { dst[dof] = src[so]; }
};

template <typename Bits>
struct FillBits {
  Bits* dst;
  Bits value;
  __device__ void operator()(int64_t, int64_t dof) const { dst[dof] = value; }
};

// Regroups elements of `bytes` into wider ones (up to 16 bytes) when the innermost dim is
// contiguous in both layouts, its length and every other stride divide evenly and the pointers
// are aligned: a bf16 slot copy then moves 16 bytes per thread instead of 2. Returns the width.
int widen(Geometry& g, int bytes, const void* a, const void* b) {
  for (int width = 16; width > bytes; width /= 2) {
    const int64_t f = width / bytes;
    if (g.nd == 0 || g.src_stride[g.nd - 1] != 1 || g.dst_stride[g.nd - 1] != 1 || g.shape[g.nd - 1] % f != 0) continue;
    if (reinterpret_cast<uintptr_t>(a) % width != 0 || reinterpret_cast<uintptr_t>(b) % width != 0) continue;
    bool ok = true;
    for (int d = 0; d + 1 < g.nd; ++d) ok = ok && g.src_stride[d] % f == 0 && g.dst_stride[d] % f == 0;
    if (!ok) continue;
    for (int d = 0; d + 1 < g.nd; ++d) g.src_stride[d] /= f, g.dst_stride[d] /= f;
    g.shape[g.nd - 1] /= f;
    g.numel /= f;
    return width;
  }
  return bytes;
}

// True when every element offset and the element count fit in 32 bits.
bool fits_int32(const Geometry& g) {
  int64_t s = 0, d = 0;
  for (int i = 0; i < g.nd; ++i) s += (g.shape[i] - 1) * g.src_stride[i], d += (g.shape[i] - 1) * g.dst_stride[i];
  return g.numel < (int64_t(1) << 31) && s < (int64_t(1) << 31) && d < (int64_t(1) << 31);
}

int grid_for(int64_t n) {
  int64_t blocks = (n + 255) / 256;
  return int(blocks < 65536 ? blocks : 65536);
}

template <typename Op>
void launch(const Geometry& g, Op op, cudaStream_t stream) {
  if (fits_int32(g))
    indexed_kernel<int32_t><<<grid_for(g.numel), 256, 0, stream>>>(g, op);
  else
    indexed_kernel<int64_t><<<grid_for(g.numel), 256, 0, stream>>>(g, op);
}

template <DType S, DType D>
void launch_convert(const void* src, void* dst, const Geometry& g, cudaStream_t stream) {
  launch(g, Convert<S, D>{static_cast<const typename Elem<S>::T*>(src), static_cast<typename Elem<D>::T*>(dst)},
         stream);
}

template <DType S>
void dispatch_dst(const void* src, void* dst, DType d, const Geometry& g, cudaStream_t stream) {
  switch (d) {
    case DType::F32: return launch_convert<S, DType::F32>(src, dst, g, stream);
    case DType::F64: return launch_convert<S, DType::F64>(src, dst, g, stream);
    case DType::BF16: return launch_convert<S, DType::BF16>(src, dst, g, stream);
    case DType::I32: return launch_convert<S, DType::I32>(src, dst, g, stream);
    case DType::I64: return launch_convert<S, DType::I64>(src, dst, g, stream);
    case DType::U16: return launch_convert<S, DType::U16>(src, dst, g, stream);
  }
}

template <typename Bits>
void launch_copy(const void* src, void* dst, const Geometry& g, cudaStream_t stream) {
  launch(g, CopyBits<Bits>{static_cast<const Bits*>(src), static_cast<Bits*>(dst)}, stream);
}

template <typename Bits>
void launch_fill(void* dst, Bits value, const Geometry& g, cudaStream_t stream) {
  launch(g, FillBits<Bits>{static_cast<Bits*>(dst), value}, stream);
}

}  // namespace

void strided_copy(const void* src, DType src_dtype, const std::vector<int64_t>& src_strides, void* dst, DType dst_dtype,
                  const std::vector<int64_t>& dst_strides, const std::vector<int64_t>& shape, cudaStream_t stream) {
  Geometry g = collapse(shape, src_strides, dst_strides);
  if (g.numel == 0) return;
  if (src_dtype == dst_dtype) {
    switch (widen(g, int(dtype_size(src_dtype)), src, dst)) {
      case 2: launch_copy<uint16_t>(src, dst, g, stream); break;
      case 4: launch_copy<uint32_t>(src, dst, g, stream); break;
      case 8: launch_copy<uint64_t>(src, dst, g, stream); break;
      case 16: launch_copy<uint4>(src, dst, g, stream); break;
    }
    check_launch("copy_ (device)");
    return;
  }
  switch (src_dtype) {
    case DType::F32: dispatch_dst<DType::F32>(src, dst, dst_dtype, g, stream); break;
    case DType::F64: dispatch_dst<DType::F64>(src, dst, dst_dtype, g, stream); break;
    case DType::BF16: dispatch_dst<DType::BF16>(src, dst, dst_dtype, g, stream); break;
    case DType::I32: dispatch_dst<DType::I32>(src, dst, dst_dtype, g, stream); break;
    case DType::I64: dispatch_dst<DType::I64>(src, dst, dst_dtype, g, stream); break;
    case DType::U16: dispatch_dst<DType::U16>(src, dst, dst_dtype, g, stream); break;
  }
  check_launch("copy_ (device)");
}

// The first sizeof(U) bytes at `bytes` as a U; memcpy because reading them through a U* would
// break the aliasing rules.
template <typename U>
static U load_bits(const void* bytes) {
  U value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

void strided_fill(void* dst, DType dtype, const std::vector<int64_t>& strides, const std::vector<int64_t>& shape,
                  uint64_t pattern, cudaStream_t stream) {
  Geometry g = collapse(shape, strides, strides);
  if (g.numel == 0) return;
  const int es = int(dtype_size(dtype));
  uint32_t words[4];  // the element's bits repeated over 16 bytes, read at the chosen width
  unsigned char* bytes = reinterpret_cast<unsigned char*>(words);
  for (int i = 0; i < 16; ++i) bytes[i] = static_cast<unsigned char>(pattern >> (8 * (i % es)));
  switch (widen(g, es, dst, dst)) {
    case 2: launch_fill<uint16_t>(dst, load_bits<uint16_t>(words), g, stream); break;
    case 4: launch_fill<uint32_t>(dst, words[0], g, stream); break;
    case 8: launch_fill<uint64_t>(dst, load_bits<uint64_t>(words), g, stream); break;
    case 16: launch_fill<uint4>(dst, make_uint4(words[0], words[1], words[2], words[3]), g, stream); break;
    default: MODA_FAIL("fill_ (device): unsupported element size ", es);
  }
  check_launch("fill_ (device)");
}

}  // namespace moda::device_copy
