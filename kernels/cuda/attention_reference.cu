// Reference attention from whole matrices. Query head h = kh * G + g reads KV head kh. For fixed
// batch b and group member g, the heads {kh * G + g : kh < Hk} form one strided batch of Hk GEMMs:
// their Q slices are G * d apart, their K/V slices d apart, their score matrices G * T * T apart.
// So every product is B * G cuBLASLt calls, each batched over Hk.
#include <cuda_bf16.h>

#include <cmath>

#include "core/allocator.h"
#include "core/cuda_check.h"
#include "kernels/cuda/attention_reference.h"
#include "kernels/cuda/matmul.h"

namespace moda::cuda {

namespace {

constexpr int kThreads = 128;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }

template <bool kMax>
__device__ float block_reduce(float x) {
  __shared__ float part[kThreads / 32];
  for (int o = 16; o > 0; o /= 2) {
    const float y = __shfl_xor_sync(0xffffffffu, x, o);
    x = kMax ? fmaxf(x, y) : x + y;
  }
  __syncthreads();  // part[] may still be read by a previous reduction
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = x;
  __syncthreads();
  x = part[0];
  for (int w = 1; w < kThreads / 32; ++w) x = kMax ? fmaxf(x, part[w]) : x + part[w];
  return x;
}

// Row r of the [B*Hq*T, T] score matrix (query position t = r % T): masked softmax into p.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    softmax_kernel(const float* __restrict__ s, T* __restrict__ p, float* __restrict__ lse, int64_t seq, bool causal) {
  const int64_t r = blockIdx.x, t = r % seq, len = causal ? t + 1 : seq;
  const float* x = s + r * seq;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < len; j += kThreads) m = fmaxf(m, x[j]);
  m = block_reduce<true>(m);
  float z = 0.f;
  for (int64_t j = threadIdx.x; j < len; j += kThreads) z += expf(x[j] - m);
  z = block_reduce<false>(z);
  const float inv = 1.f / z;
  for (int64_t j = threadIdx.x; j < seq; j += kThreads) store(p + r * seq + j, j < len ? expf(x[j] - m) * inv : 0.f);
  if (lse && threadIdx.x == 0) lse[r] = m + logf(z);
}

// dS = scale * P * (dP - sum_j P_j dP_j), written over P (row by row, after the row sum).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    softmax_backward_kernel(T* p, const float* __restrict__ dp, int64_t seq, bool causal, float scale) {
  const int64_t r = blockIdx.x, t = r % seq, len = causal ? t + 1 : seq;
  T* pr = p + r * seq;
  const float* dpr = dp + r * seq;
  float D = 0.f;
  for (int64_t j = threadIdx.x; j < len; j += kThreads) D += to_f(pr[j]) * dpr[j];
  D = block_reduce<false>(D);
  for (int64_t j = threadIdx.x; j < len; j += kThreads) store(pr + j, scale * to_f(pr[j]) * (dpr[j] - D));
}

__global__ void to_bf16_kernel(const float* __restrict__ x, __nv_bfloat16* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

template <typename T>
using Dev = std::conditional_t<std::is_same_v<T, bf16>, __nv_bfloat16, T>;

// Scratch from the caching allocator, returned (stream-ordered) when the op's launches are queued.
struct Scratch {
  void* ptr = nullptr;
  Scratch(size_t bytes, cudaStream_t stream) {
    int device = 0;
    MODA_CUDA_CHECK(cudaGetDevice(&device), "attention_reference");
    ptr = cuda_allocator::allocate(bytes, device, stream);
  }
  ~Scratch() { cuda_allocator::free(ptr); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

struct Dims {
  int64_t B, T, Hq, Hk, G, d;
  explicit Dims(const AttentionShape& s)
      : B(s.batch), T(s.seq), Hq(s.heads_q), Hk(s.heads_kv), G(s.heads_q / s.heads_kv), d(s.head_dim) {}
  int64_t q_off(int64_t b, int64_t g) const { return b * T * Hq * d + g * d; }  // head g of group 0
  int64_t kv_off(int64_t b) const { return b * T * Hk * d; }
  int64_t s_off(int64_t b, int64_t g) const { return (b * Hq + g) * T * T; }
};

// The three GEMM shapes, batched over the Hk heads of one (b, g).
GemmDesc qk_desc(const Dims& D, float alpha) {  // S[T, T] = alpha * Q K^T
  GemmDesc g;
  g.m = D.T, g.n = D.T, g.k = D.d, g.trans_b = true, g.alpha = alpha, g.batch = D.Hk;
  g.lda = D.Hq * D.d, g.stride_a = D.G * D.d, g.ldb = D.Hk * D.d, g.stride_b = D.d, g.ldc = D.T,
  g.stride_c = D.G * D.T * D.T;
  return g;
}
GemmDesc pv_desc(const Dims& D) {  // O[T, d] = P V  (also dQ = dS K)
  GemmDesc g;
  g.m = D.T, g.n = D.d, g.k = D.T, g.batch = D.Hk;
  g.lda = D.T, g.stride_a = D.G * D.T * D.T, g.ldb = D.Hk * D.d, g.stride_b = D.d, g.ldc = D.Hq * D.d,
  g.stride_c = D.G * D.d;
  return g;
}
GemmDesc ptq_desc(const Dims& D, float beta) {  // dV[T, d] (+)= P^T dO  (also dK = dS^T Q)
  GemmDesc g;
  g.m = D.T, g.n = D.d, g.k = D.T, g.trans_a = true, g.beta = beta, g.batch = D.Hk;
  g.lda = D.T, g.stride_a = D.G * D.T * D.T, g.ldb = D.Hq * D.d, g.stride_b = D.G * D.d, g.ldc = D.Hk * D.d,
  g.stride_c = D.d;
  return g;
}

template <typename T>
void scores_and_probs(const AttentionShape& s, const Dims& D, const T* q, const T* k, float* S, T* P, float* lse,
                      cudaStream_t stream) {
  const float scale = float(s.softmax_scale());
  for (int64_t b = 0; b < D.B; ++b)
    for (int64_t g = 0; g < D.G; ++g)
      matmul(qk_desc(D, scale), q + D.q_off(b, g), k + D.kv_off(b), S + D.s_off(b, g), nullptr, stream);
  softmax_kernel<Dev<T>>
      <<<unsigned(D.B * D.Hq * D.T), kThreads, 0, stream>>>(S, reinterpret_cast<Dev<T>*>(P), lse, D.T, s.causal);
  check_launch("attention_reference softmax");
}

void check_grid(const AttentionShape& s, const char* op) {
  s.validate(op);
  MODA_CHECK(s.batch * s.heads_q * s.seq < (int64_t(1) << 31), op, ": B*Hq*T=", s.batch * s.heads_q * s.seq,
             " rows exceed the grid limit");
}

template <typename T>
void forward(const AttentionShape& s, const T* q, const T* k, const T* v, T* out, float* lse, cudaStream_t stream) {
  check_grid(s, "attention_reference_forward");
  const Dims D(s);
  const size_t nS = size_t(D.B * D.Hq * D.T * D.T);
  Scratch S(nS * sizeof(float), stream), P(nS * sizeof(T), stream);
  float* Sp = static_cast<float*>(S.ptr);
  T* Pp = static_cast<T*>(P.ptr);
  scores_and_probs(s, D, q, k, Sp, Pp, lse, stream);
  for (int64_t b = 0; b < D.B; ++b)
    for (int64_t g = 0; g < D.G; ++g)
      matmul(pv_desc(D), Pp + D.s_off(b, g), v + D.kv_off(b), out + D.q_off(b, g), static_cast<const T*>(nullptr),
             stream);
}

template <typename T>
void backward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* dout, T* dq, T* dk, T* dv,
              cudaStream_t stream) {
  check_grid(s, "attention_reference_backward");
  const Dims D(s);
  const size_t nS = size_t(D.B * D.Hq * D.T * D.T), nKV = size_t(D.B * D.T * D.Hk * D.d);
  constexpr bool kF32 = std::is_same_v<T, float>;
  Scratch S(nS * sizeof(float), stream), P(nS * sizeof(T), stream), KV(kF32 ? 256 : 2 * nKV * sizeof(float), stream);
  float* Sp = static_cast<float*>(S.ptr);
  T* Pp = static_cast<T*>(P.ptr);
  // dK and dV sum over the G heads of a group: accumulate in fp32 (the outputs themselves when f32).
  float* dk32 = kF32 ? reinterpret_cast<float*>(dk) : static_cast<float*>(KV.ptr);
  float* dv32 = kF32 ? reinterpret_cast<float*>(dv) : static_cast<float*>(KV.ptr) + nKV;
  scores_and_probs(s, D, q, k, Sp, Pp, static_cast<float*>(nullptr), stream);
  for (int64_t b = 0; b < D.B; ++b)
    for (int64_t g = 0; g < D.G; ++g) {
      matmul(ptq_desc(D, g == 0 ? 0.f : 1.f), Pp + D.s_off(b, g), dout + D.q_off(b, g), dv32 + D.kv_off(b), nullptr,
             stream);
      GemmDesc dp = qk_desc(D, 1.f);  // dP = dO V^T, over the score buffer
      matmul(dp, dout + D.q_off(b, g), v + D.kv_off(b), Sp + D.s_off(b, g), nullptr, stream);
    }
  softmax_backward_kernel<Dev<T>><<<unsigned(D.B * D.Hq * D.T), kThreads, 0, stream>>>(
      reinterpret_cast<Dev<T>*>(Pp), Sp, D.T, s.causal, float(s.softmax_scale()));
  check_launch("attention_reference softmax backward");
  for (int64_t b = 0; b < D.B; ++b)
    for (int64_t g = 0; g < D.G; ++g) {
      matmul(pv_desc(D), Pp + D.s_off(b, g), k + D.kv_off(b), dq + D.q_off(b, g), static_cast<const T*>(nullptr),
             stream);
      matmul(ptq_desc(D, g == 0 ? 0.f : 1.f), Pp + D.s_off(b, g), q + D.q_off(b, g), dk32 + D.kv_off(b), nullptr,
             stream);
    }
  if constexpr (!kF32) {
    const int blocks = int(std::min<int64_t>((nKV + 255) / 256, 4096));
    to_bf16_kernel<<<blocks, 256, 0, stream>>>(dk32, reinterpret_cast<__nv_bfloat16*>(dk), int64_t(nKV));
    to_bf16_kernel<<<blocks, 256, 0, stream>>>(dv32, reinterpret_cast<__nv_bfloat16*>(dv), int64_t(nKV));
    check_launch("attention_reference dk/dv to bf16");
  }
}

}  // namespace

void attention_reference_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* out,
                                 float* lse, cudaStream_t stream) {
  forward(s, q, k, v, out, lse, stream);
}
void attention_reference_forward(const AttentionShape& s, const bf16* q, const bf16* k, const bf16* v, bf16* out,
                                 float* lse, cudaStream_t stream) {
  forward(s, q, k, v, out, lse, stream);
}
void attention_reference_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                                  const float* dout, float* dq, float* dk, float* dv, cudaStream_t stream) {
  backward(s, q, k, v, dout, dq, dk, dv, stream);
}
void attention_reference_backward(const AttentionShape& s, const bf16* q, const bf16* k, const bf16* v,
                                  const bf16* dout, bf16* dq, bf16* dk, bf16* dv, cudaStream_t stream) {
  backward(s, q, k, v, dout, dq, dk, dv, stream);
}

}  // namespace moda::cuda
