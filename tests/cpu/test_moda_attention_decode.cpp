// ops::moda_attention_decode (cached decoding: queries at positions q_offset.. of a longer key
// sequence) against rows of the ordinary full-sequence op, on the CPU reference kernel.
#include <catch2/catch.hpp>
#include <vector>

#include "autograd/graph.h"
#include "autograd/moda_attention_ops.h"
#include "tests/compare.h"
#include "tests/test_support.h"

using namespace moda;
using moda::test::rel_l2;
using moda::testing::error_of;

TEST_CASE("moda_attention_decode: queries at an offset equal those rows of the full op", "[cpu][attention]") {
  const int64_t B = 2, T = 11, Hq = 4, Hk = 2, d = 8;
  for (DType dt : {DType::F64, DType::F32})
    for (int64_t L : {0, 3}) {
      Tensor q = Tensor::randn({B, T, Hq, d}, 1, dt), k = Tensor::randn({B, T, Hk, d}, 2, dt);
      Tensor v = Tensor::randn({B, T, Hk, d}, 3, dt);
      Tensor kd = L ? Tensor::randn({B, T, L, Hk, d}, 4, dt) : Tensor();
      Tensor vd = L ? Tensor::randn({B, T, L, Hk, d}, 5, dt) : Tensor();
      Tensor full = ops::moda_attention(q, k, v, kd, vd, /*causal=*/true);
      // Every split of [0, T) into a prefix (the cache) and a block of queries, single tokens included.
      for (int64_t t0 : {int64_t(0), int64_t(1), int64_t(5), T - 1})
        for (int64_t n : {int64_t(1), T - t0}) {
          INFO(dtype_name(dt) << " L " << L << " offset " << t0 << " queries " << n);
          Tensor o =
              ops::moda_attention_decode(q.narrow(1, t0, n), k.narrow(1, 0, t0 + n), v.narrow(1, 0, t0 + n),
                                         L ? kd.narrow(1, t0, n) : Tensor(), L ? vd.narrow(1, t0, n) : Tensor(), t0);
          CHECK(rel_l2(o, full.narrow(1, t0, n)) < (dt == DType::F64 ? 1e-14 : 1e-6));
        }
    }
}

TEST_CASE("moda_attention_decode: shape and gradient-mode errors", "[cpu][attention]") {
  Tensor q = Tensor::randn({1, 2, 2, 4}, 1), k = Tensor::randn({1, 5, 1, 4}, 2), v = Tensor::randn({1, 5, 1, 4}, 3);
  CHECK_THAT(error_of([&] { ops::moda_attention_decode(q, k, v, Tensor(), Tensor(), 2); }),
             Catch::Contains("k, v [B,2+T,Hk,d]"));
  Tensor kd = Tensor::randn({1, 5, 1, 1, 4}, 4);  // depth must cover the 2 query tokens, not all 5
  CHECK_THAT(error_of([&] { ops::moda_attention_decode(q, k, v, kd, kd, 3); }), Catch::Contains("depth_k"));
  Tensor qg = q.detach().set_requires_grad(true);
  CHECK_THAT(error_of([&] { ops::moda_attention_decode(qg, k, v, Tensor(), Tensor(), 3); }),
             Catch::Contains("inference only"));
  NoGradGuard no_grad;
  CHECK(ops::moda_attention_decode(qg, k, v, Tensor(), Tensor(), 3).shape() == Shape{1, 2, 2, 4});
}
