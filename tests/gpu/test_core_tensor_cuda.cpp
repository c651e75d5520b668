#include <catch2/catch.hpp>

#include <cmath>

#include "core/allocator.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/stream.h"
#include "core/tensor.h"

using namespace moda;

TEST_CASE("cuda core: caching allocator reuses freed blocks and reports statistics", "[gpu][core]") {
  cuda_allocator::release_cached(0);
  auto before = cuda_allocator::stats(0);
  void* first;
  {
    Tensor a = Tensor::empty({1000, 1000}, DType::F32, Device::cuda());  // 4 MB -> 2 MiB granules
    first = a.data_ptr();
    auto during = cuda_allocator::stats(0);
    REQUIRE(during.allocated >= before.allocated + 4000000);
    REQUIRE(during.peak_allocated >= during.allocated);
  }
  auto after_free = cuda_allocator::stats(0);
  REQUIRE(after_free.allocated == before.allocated);
  REQUIRE(after_free.reserved >= 4000000);  // kept in the cache
  Tensor b = Tensor::empty({999, 1000}, DType::F32, Device::cuda());
  REQUIRE(b.data_ptr() == first);  // served from the cache
  REQUIRE(cuda_allocator::stats(0).cache_hits > before.cache_hits);
  b = Tensor();
  cuda_allocator::release_cached(0);
  REQUIRE(cuda_allocator::stats(0).reserved == 0);
}

TEST_CASE("cuda core: out-of-memory error states request, use and peak", "[gpu][core]") {
  try {
    Tensor huge = Tensor::empty({int64_t(1) << 50}, DType::F32, Device::cuda());
    FAIL("expected out of memory");
  } catch (const OutOfMemoryError& e) {
    std::string m = e.what();
    REQUIRE(m.find("requested") != std::string::npos);
    REQUIRE(m.find("in use") != std::string::npos);
    REQUIRE(m.find("peak") != std::string::npos);
  }
}

TEST_CASE("cuda core: copies between devices, dtypes and strided layouts", "[gpu][core]") {
  Tensor host = Tensor::randn({4, 33, 3, 17}, 5);
  Tensor dev = host.to(Device::cuda());
  REQUIRE(dev.to_float_vector() == host.to_float_vector());
  // Strided device view (like a depth-stream slot) made contiguous on the device.
  Tensor slot = dev.select(2, 1);
  REQUIRE_FALSE(slot.is_contiguous());
  REQUIRE(slot.contiguous().to_float_vector() == host.select(2, 1).contiguous().to_float_vector());
  // Write a host tensor into a strided device view.
  Tensor dst = Tensor::zeros({4, 33, 3, 17}, DType::F32, Device::cuda());
  dst.select(2, 2).copy_(host.select(2, 0));
  REQUIRE(dst.select(2, 2).to_float_vector() == host.select(2, 0).contiguous().to_float_vector());
  REQUIRE(dst.select(2, 0).to_float_vector() == std::vector<float>(4 * 33 * 17, 0.0f));
  // dtype conversion with the GPU involved.
  Tensor b = dev.to(DType::BF16);
  REQUIRE(b.to_float_vector() == host.to(DType::BF16).to_float_vector());
  // Same seed, same numbers on both devices.
  REQUIRE(Tensor::randn({1001}, 9, DType::F32, Device::cuda()).to_float_vector() ==
          Tensor::randn({1001}, 9).to_float_vector());
}

TEST_CASE("cuda core: on-device copies convert between every dtype pair and any layouts", "[gpu][core]") {
  // Integers small enough to be exact in every dtype, so every conversion must match the host's.
  Tensor ints = Tensor::randn({5, 7, 9}, 11).to(DType::F64);
  {
    std::vector<double> v = ints.to_double_vector();
    for (double& x : v) x = std::round(std::abs(x) * 20.0);  // non-negative for u16, exact in bf16
    ints = Tensor::from_vector(v, {5, 7, 9}, DType::F64);
  }
  const DType all[] = {DType::F32, DType::BF16, DType::I32, DType::I64, DType::U16, DType::F64};
  for (DType from : all) {
    for (DType to : all) {
      CAPTURE(dtype_name(from), dtype_name(to));
      Tensor src = ints.to(from).to(Device::cuda()).transpose(0, 2);  // strided source
      Tensor dst = Tensor::empty({9, 7, 5}, to, Device::cuda());
      dst.fill_(1.0);
      dst.copy_(src);
      REQUIRE(dst.to_double_vector() == ints.to(from).transpose(0, 2).contiguous().to(to).to_double_vector());
    }
  }
  // A depth-stream slot write: rows of 64 bf16 move as 16-byte elements (the widened path), and
  // odd row lengths fall back to narrower ones; neighbouring slots stay untouched.
  for (int64_t d : {64, 6, 3}) {
    CAPTURE(d);
    Tensor kv = Tensor::randn({2, 33, 4, d}, 12, DType::BF16);
    Tensor stream = Tensor::zeros({2, 33, 3, 4, d}, DType::BF16, Device::cuda());
    stream.select(2, 1).copy_(kv.to(Device::cuda()));
    REQUIRE(stream.select(2, 1).to_float_vector() == kv.to_float_vector());
    REQUIRE(stream.select(2, 1).contiguous().to_float_vector() == kv.to_float_vector());
    for (int64_t other : {0, 2})
      REQUIRE(stream.select(2, other).to_double_vector() == std::vector<double>(2 * 33 * 4 * d, 0.0));
  }
  // f32 -> bf16 rounds to nearest even on the device exactly as on the host (random values).
  Tensor r = Tensor::randn({3, 1001}, 4);
  REQUIRE(r.to(Device::cuda()).to(DType::BF16).to_float_vector() == r.to(DType::BF16).to_float_vector());
  // fill_ on a strided view touches only the view.
  Tensor buf = Tensor::zeros({6, 4, 10}, DType::BF16, Device::cuda());
  buf.select(1, 2).fill_(2.5);
  std::vector<float> got = buf.to_float_vector();
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t k = 0; k < 10; ++k) REQUIRE(got[(i * 4 + j) * 10 + k] == (j == 2 ? 2.5f : 0.0f));
}

TEST_CASE("cuda core: events time work on a stream", "[gpu][core]") {
  Stream s;
  Event start, stop;
  start.record(s.get());
  Tensor big = Tensor::empty({1 << 24}, DType::F32, Device::cuda());
  stop.record(s.get());
  stop.synchronize();
  REQUIRE(stop.elapsed_ms_since(start) >= 0.0f);
}
