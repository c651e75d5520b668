#pragma once
// Counter-based RNG (Philox4x32-10, Salmon et al. 2011). A value depends only on (seed, counter),
// so any element can be generated independently, in any order, on any device: initialising a
// tensor gives the same numbers on the CPU and the GPU. Usable from CUDA device code.
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MODA_HD __host__ __device__ __forceinline__
#else
#define MODA_HD inline
#endif

namespace moda::rng {

struct Philox4 {
  uint32_t v[4];
};

MODA_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Four 32-bit random words for counter `ctr` under key `seed`.
MODA_HD Philox4 philox(uint64_t seed, uint64_t ctr) {
  uint32_t c0 = static_cast<uint32_t>(ctr), c1 = static_cast<uint32_t>(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in (0, 1]: never 0, so log() below is safe.
MODA_HD double to_unit(uint32_t hi, uint32_t lo) {
  uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ lo;  // 53 random bits
  bits &= (1ull << 53) - 1;
  return (static_cast<double>(bits) + 1.0) / 9007199254740992.0;
}

MODA_HD double uniform(uint64_t seed, uint64_t index) {
  Philox4 r = philox(seed, index);
  return to_unit(r.v[0], r.v[1]);
}

// Standard normal for element `index` (Box-Muller over one Philox block).
MODA_HD double normal(uint64_t seed, uint64_t index) {
  Philox4 r = philox(seed, index);
  double u1 = to_unit(r.v[0], r.v[1]), u2 = to_unit(r.v[2], r.v[3]);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

}  // namespace moda::rng
