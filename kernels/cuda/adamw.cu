#include <cuda_bf16.h>

#include <cmath>

#include "core/cuda_check.h"
#include "kernels/cuda/adamw.h"

namespace moda::cuda {

namespace {

// Step constants computed once on the host in double (bias corrections of this step).
struct Consts {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps, decay, step_size, inv_sqrt_bc2;
};

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

__device__ __forceinline__ void update(const Consts& c, float gs, float& p, float g, float& m, float& v) {
  g *= gs;
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * g * g;
  p = p * c.decay - c.step_size * m / (sqrtf(v) * c.inv_sqrt_bc2 + c.eps);
}

// Each thread updates 4 consecutive elements per iteration (float4 for p, m, v; 4 g values) when
// `vec`; otherwise one element. Grid-stride loop.
template <typename G>
__global__ void adamw_kernel(Consts c, float* __restrict__ p, const G* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, __nv_bfloat16* __restrict__ pb,
                             const float* __restrict__ grad_scale, float host_scale, bool vec) {
  const float gs = grad_scale ? host_scale * *grad_scale : host_scale;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t start = 0;
  if (vec) {
    const int64_t n4 = n / 4;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += stride) {
      float4 pp = reinterpret_cast<float4*>(p)[i], mm = reinterpret_cast<float4*>(m)[i],
             vv = reinterpret_cast<float4*>(v)[i];
      float gg[4];
      if constexpr (sizeof(G) == 4) {
        const float4 g4 = reinterpret_cast<const float4*>(g)[i];
        gg[0] = g4.x, gg[1] = g4.y, gg[2] = g4.z, gg[3] = g4.w;
      } else {
        const uint2 raw = reinterpret_cast<const uint2*>(g)[i];
        const __nv_bfloat162 lo = *reinterpret_cast<const __nv_bfloat162*>(&raw.x);
        const __nv_bfloat162 hi = *reinterpret_cast<const __nv_bfloat162*>(&raw.y);
        gg[0] = __low2float(lo), gg[1] = __high2float(lo), gg[2] = __low2float(hi), gg[3] = __high2float(hi);
      }
      update(c, gs, pp.x, gg[0], mm.x, vv.x);
      update(c, gs, pp.y, gg[1], mm.y, vv.y);
      update(c, gs, pp.z, gg[2], mm.z, vv.z);
      update(c, gs, pp.w, gg[3], mm.w, vv.w);
      reinterpret_cast<float4*>(p)[i] = pp, reinterpret_cast<float4*>(m)[i] = mm, reinterpret_cast<float4*>(v)[i] = vv;
      if (pb) {
        uint2 out;
        *reinterpret_cast<__nv_bfloat162*>(&out.x) = __floats2bfloat162_rn(pp.x, pp.y);
        *reinterpret_cast<__nv_bfloat162*>(&out.y) = __floats2bfloat162_rn(pp.z, pp.w);
        reinterpret_cast<uint2*>(pb)[i] = out;
      }
    }
    start = n4 * 4;
  }
  for (int64_t i = start + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride) {
    float pi = p[i], mi = m[i], vi = v[i];
    update(c, gs, pi, to_f(g[i]), mi, vi);
    p[i] = pi, m[i] = mi, v[i] = vi;
    if (pb) pb[i] = __float2bfloat16_rn(pi);
  }
}

bool aligned(const void* x, size_t a) { return x == nullptr || reinterpret_cast<uintptr_t>(x) % a == 0; }

template <typename G, typename DG>
void step(const AdamWParams& hp, float* p, const G* g, float* m, float* v, int64_t n, bf16* pb, const float* gs,
          float host_scale, cudaStream_t stream) {
  hp.validate("adamw_step");
  MODA_CHECK(n >= 0, "adamw_step: n must be >= 0, got ", n);
  if (n == 0) return;
  Consts c;
  c.beta1 = float(hp.beta1), c.beta2 = float(hp.beta2);
  c.one_minus_beta1 = float(1.0 - hp.beta1), c.one_minus_beta2 = float(1.0 - hp.beta2);
  c.eps = float(hp.eps), c.decay = float(1.0 - hp.lr * hp.weight_decay);
  c.step_size = float(hp.lr / (1.0 - std::pow(hp.beta1, double(hp.step))));
  c.inv_sqrt_bc2 = float(1.0 / std::sqrt(1.0 - std::pow(hp.beta2, double(hp.step))));
  const bool vec = aligned(p, 16) && aligned(m, 16) && aligned(v, 16) && aligned(g, 4 * sizeof(G)) && aligned(pb, 8);
  int device = 0, sms = 0;
  MODA_CUDA_CHECK(cudaGetDevice(&device), "adamw_step");
  MODA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "adamw_step");
  const int64_t work = vec ? (n + 3) / 4 : n;
  const int blocks = int(std::max<int64_t>(1, std::min<int64_t>((work + 255) / 256, int64_t(sms) * 8)));
  adamw_kernel<DG><<<blocks, 256, 0, stream>>>(c, p, reinterpret_cast<const DG*>(g), m, v, n,
                                               reinterpret_cast<__nv_bfloat16*>(pb), gs, host_scale, vec);
  check_launch("adamw_step");
}

}  // namespace

void adamw_step(const AdamWParams& hp, float* p, const float* g, float* m, float* v, int64_t n, bf16* p_bf16,
                const float* grad_scale, cudaStream_t stream) {
  step<float, float>(hp, p, g, m, v, n, p_bf16, grad_scale, 1.f, stream);
}
void adamw_step(const AdamWParams& hp, float* p, const bf16* g, float* m, float* v, int64_t n, bf16* p_bf16,
                const float* grad_scale, cudaStream_t stream) {
  step<bf16, __nv_bfloat16>(hp, p, g, m, v, n, p_bf16, grad_scale, 1.f, stream);
}
void adamw_step(const AdamWParams& hp, float* p, const float* g, float* m, float* v, int64_t n, bf16* p_bf16,
                double grad_scale, cudaStream_t stream) {
  step<float, float>(hp, p, g, m, v, n, p_bf16, nullptr, float(grad_scale), stream);
}
void adamw_step(const AdamWParams& hp, float* p, const bf16* g, float* m, float* v, int64_t n, bf16* p_bf16,
                double grad_scale, cudaStream_t stream) {
  step<bf16, __nv_bfloat16>(hp, p, g, m, v, n, p_bf16, nullptr, float(grad_scale), stream);
}

}  // namespace moda::cuda
