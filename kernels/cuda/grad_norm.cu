#include <cuda_bf16.h>

#include <cmath>
#include <vector>

#include "core/allocator.h"
#include "core/cuda_check.h"
#include "kernels/cuda/grad_norm.h"

namespace moda::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxSpans = 64;              // spans per launch (kernel-parameter struct)
constexpr int64_t kElemsPerBlock = 16384;  // sizes the fixed block count of a span
constexpr int64_t kMaxBlocksPerSpan = 1024;

// Spans of one launch and the first block of each; blocks [first[i], first[i+1]) cover span i.
struct Batch {
  const void* data[kMaxSpans];
  int64_t n[kMaxSpans];
  int32_t first[kMaxSpans + 1];
  bool bf16[kMaxSpans];
  int count;
};

int64_t blocks_for(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>((n + kElemsPerBlock - 1) / kElemsPerBlock, kMaxBlocksPerSpan));
}

__device__ __forceinline__ int find_span(const Batch& b) {
  int s = 0;
  while (s + 1 < b.count && int(blockIdx.x) >= b.first[s + 1]) ++s;
  return s;
}

__device__ double block_sum(double x) {
  __shared__ double part[kThreads / 32];
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = x;
  __syncthreads();
  double s = 0.0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / 32; ++w) s += part[w];
  return s;  // valid in thread 0
}

// Each thread walks its elements 4 at a time (16-byte float4 / 8-byte bf16x4 loads when aligned).
__global__ void __launch_bounds__(kThreads) sumsq_kernel(Batch b, double* partials) {
  const int s = find_span(b);
  const int64_t blk = blockIdx.x - b.first[s], nblk = b.first[s + 1] - b.first[s], n = b.n[s];
  const int64_t tid = blk * kThreads + threadIdx.x, stride = nblk * kThreads;
  double acc = 0.0;
  if (!b.bf16[s]) {
    const float* x = static_cast<const float*>(b.data[s]);
    int64_t done = 0;
    if (reinterpret_cast<uintptr_t>(x) % 16 == 0) {
      for (int64_t i = tid; i < n / 4; i += stride) {
        const float4 v = reinterpret_cast<const float4*>(x)[i];
        acc += double(v.x) * v.x + double(v.y) * v.y + double(v.z) * v.z + double(v.w) * v.w;
      }
      done = n / 4 * 4;
    }
    for (int64_t i = done + tid; i < n; i += stride) acc += double(x[i]) * x[i];
  } else {
    const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(b.data[s]);
    int64_t done = 0;
    if (reinterpret_cast<uintptr_t>(x) % 8 == 0) {
      for (int64_t i = tid; i < n / 4; i += stride) {
        const uint2 raw = reinterpret_cast<const uint2*>(x)[i];
        const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
        const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
        acc += double(lo.x) * lo.x + double(lo.y) * lo.y + double(hi.x) * hi.x + double(hi.y) * hi.y;
      }
      done = n / 4 * 4;
    }
    for (int64_t i = done + tid; i < n; i += stride) {
      const float v = __bfloat162float(x[i]);
      acc += double(v) * v;
    }
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(1024) finish_kernel(const double* partials, int64_t count, float* norm,
                                                      float* clip_scale, double max_norm, double* sumsq) {
  __shared__ double part[32];
  double x = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) x += partials[i];
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = x;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < int(blockDim.x / 32); ++w) total += part[w];
    const double nrm = sqrt(total);
    if (sumsq) *sumsq = total;
    if (norm) *norm = float(nrm);
    if (clip_scale) {
      const double s = max_norm / (nrm + 1e-6);  // as moda::clip_coefficient
      *clip_scale = float(s < 1.0 ? s : 1.0);
    }
  }
}

__global__ void __launch_bounds__(kThreads) scale_kernel(Batch b, const float* __restrict__ scale) {
  const float f = *scale;
  if (f == 1.f) return;
  const int s = find_span(b);
  const int64_t blk = blockIdx.x - b.first[s], nblk = b.first[s + 1] - b.first[s], n = b.n[s];
  const int64_t tid = blk * kThreads + threadIdx.x, stride = nblk * kThreads;
  if (!b.bf16[s]) {
    float* x = const_cast<float*>(static_cast<const float*>(b.data[s]));
    for (int64_t i = tid; i < n; i += stride) x[i] *= f;
  } else {
    __nv_bfloat16* x = const_cast<__nv_bfloat16*>(static_cast<const __nv_bfloat16*>(b.data[s]));
    for (int64_t i = tid; i < n; i += stride) x[i] = __float2bfloat16_rn(__bfloat162float(x[i]) * f);
  }
}

// Splits spans into launches of at most kMaxSpans; skips empty spans. Returns the total block count.
std::vector<Batch> make_batches(const GradSpan* spans, int64_t count, int64_t& total_blocks) {
  std::vector<Batch> out;
  total_blocks = 0;
  Batch cur{};
  int32_t first = 0;
  auto flush = [&] {
    if (cur.count == 0) return;
    cur.first[cur.count] = first;
    out.push_back(cur);
    cur = Batch{};
    first = 0;
  };
  for (int64_t i = 0; i < count; ++i) {
    MODA_CHECK(spans[i].n >= 0 && (spans[i].n == 0 || spans[i].data), "grad_norm: span ", i, " has n=", spans[i].n,
               " and data=", spans[i].data);
    if (spans[i].n == 0) continue;
    if (cur.count == kMaxSpans) flush();
    cur.data[cur.count] = spans[i].data, cur.n[cur.count] = spans[i].n, cur.bf16[cur.count] = spans[i].bf16;
    cur.first[cur.count++] = first;
    first += int32_t(blocks_for(spans[i].n));
    total_blocks += blocks_for(spans[i].n);
  }
  flush();
  return out;
}

void launch_norm(const GradSpan* spans, int64_t count, float* norm, float* clip_scale, double max_norm, double* sumsq,
                 cudaStream_t stream) {
  int64_t total = 0;
  const std::vector<Batch> batches = make_batches(spans, count, total);
  int device = 0;
  MODA_CUDA_CHECK(cudaGetDevice(&device), "grad_norm");
  double* partials = static_cast<double*>(cuda_allocator::allocate(std::max<int64_t>(total, 1) * 8, device, stream));
  int64_t offset = 0;
  for (const Batch& b : batches) {
    sumsq_kernel<<<b.first[b.count], kThreads, 0, stream>>>(b, partials + offset);
    offset += b.first[b.count];
  }
  finish_kernel<<<1, 1024, 0, stream>>>(partials, total, norm, clip_scale, max_norm, sumsq);
  cuda_allocator::free(partials);  // stream-ordered reuse only
  check_launch("grad_norm");
}

double single_norm(const void* g, int64_t n, bool bf16, cudaStream_t stream) {
  int device = 0;
  MODA_CUDA_CHECK(cudaGetDevice(&device), "grad_norm");
  double* dev = static_cast<double*>(cuda_allocator::allocate(sizeof(double), device, stream));
  double host = 0.0;
  try {
    const GradSpan span{const_cast<void*>(g), n, bf16};
    launch_norm(&span, 1, nullptr, nullptr, 0.0, dev, stream);
    MODA_CUDA_CHECK(cudaMemcpyAsync(&host, dev, sizeof host, cudaMemcpyDeviceToHost, stream), "grad_norm");
    MODA_CUDA_CHECK(cudaStreamSynchronize(stream), "grad_norm");
  } catch (...) {
    cuda_allocator::free(dev);
    throw;
  }
  cuda_allocator::free(dev);
  return std::sqrt(host);
}

}  // namespace

void grad_norm(const GradSpan* spans, int64_t count, float* norm, float* clip_scale, double max_norm,
               cudaStream_t stream) {
  launch_norm(spans, count, norm, clip_scale, max_norm, nullptr, stream);
}

double grad_norm(const float* g, int64_t n, cudaStream_t stream) { return single_norm(g, n, false, stream); }
double grad_norm(const bf16* g, int64_t n, cudaStream_t stream) { return single_norm(g, n, true, stream); }

void scale_grads(const GradSpan* spans, int64_t count, const float* scale, cudaStream_t stream) {
  int64_t total = 0;
  for (const Batch& b : make_batches(spans, count, total)) {
    scale_kernel<<<b.first[b.count], kThreads, 0, stream>>>(b, scale);
    check_launch("scale_grads");
  }
}

void clip_grad_norm(const GradSpan* spans, int64_t count, double max_norm, float* norm, float* clip_scale,
                    cudaStream_t stream) {
  MODA_CHECK(norm && clip_scale, "clip_grad_norm: norm and clip_scale must be device pointers, got null");
  grad_norm(spans, count, norm, clip_scale, max_norm, stream);
  scale_grads(spans, count, clip_scale, stream);
}

}  // namespace moda::cuda
