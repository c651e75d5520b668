#include <catch2/catch.hpp>

#include "core/allocator.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"

using namespace moda;

TEST_CASE("core: views share storage and index correctly", "[cpu][core]") {
  std::vector<float> v(24);
  for (int i = 0; i < 24; ++i) v[i] = static_cast<float>(i);
  Tensor t = Tensor::from_vector(v, {2, 3, 4});
  REQUIRE(t.is_contiguous());
  Tensor n = t.narrow(2, 1, 2);  // [2,3,2]
  REQUIRE_FALSE(n.is_contiguous());
  REQUIRE(n.same_storage(t));
  auto nv = n.to_float_vector();
  REQUIRE(nv == std::vector<float>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22});
  Tensor s = t.select(1, 2);  // [2,4]
  REQUIRE(s.to_float_vector() == std::vector<float>{8, 9, 10, 11, 20, 21, 22, 23});
  Tensor tr = t.view({6, 4}).transpose(0, 1);
  REQUIRE(tr.shape() == Shape{4, 6});
  REQUIRE(tr.contiguous().to_float_vector()[1] == 4.0f);
  REQUIRE(t.reshape({4, -1}).shape() == Shape{4, 6});
  // Writing through a view changes the base.
  n.fill_(-1.0);
  REQUIRE(t.to_float_vector()[1] == -1.0f);
  REQUIRE(t.to_float_vector()[0] == 0.0f);
}

TEST_CASE("core: dtype conversions round-trip", "[cpu][core]") {
  Tensor t = Tensor::from_vector(std::vector<float>{1.5f, -2.25f, 3.0f, 1e-3f}, {4});
  Tensor b = t.to(DType::BF16);
  REQUIRE(b.dtype() == DType::BF16);
  auto back = b.to(DType::F32).to_float_vector();
  REQUIRE(back[0] == 1.5f);
  REQUIRE(back[1] == -2.25f);
  REQUIRE(back[3] == Approx(1e-3).epsilon(1e-2));
  REQUIRE(bf16_to_float(float_to_bf16(1.00390625f)) == 1.0f);  // ties round to even
  Tensor i = Tensor::from_ints({1, 65535, 7}, {3}, DType::U16);
  REQUIRE(i.to(DType::I64).to_int_vector() == std::vector<int64_t>{1, 65535, 7});
}

TEST_CASE("core: host reads give every dtype's values exactly, views included", "[cpu][core]") {
  Tensor b = Tensor::from_vector(std::vector<float>{1.5f, -2.25f, 3.0f, 0.5f, -0.0f, 65280.0f}, {2, 3}, DType::BF16);
  REQUIRE(b.to_float_vector() == std::vector<float>{1.5f, -2.25f, 3.0f, 0.5f, -0.0f, 65280.0f});
  REQUIRE(b.narrow(1, 1, 2).to_double_vector() == std::vector<double>{-2.25, 3.0, -0.0, 65280.0});
  // int64 beyond 2^53 (where doubles skip odd numbers) comes back exact.
  Tensor big = Tensor::empty({2}, DType::I64);
  big.data<int64_t>()[0] = (int64_t(1) << 53) + 1;
  big.data<int64_t>()[1] = -((int64_t(1) << 62) + 3);
  REQUIRE(big.to_int_vector() == std::vector<int64_t>{(int64_t(1) << 53) + 1, -((int64_t(1) << 62) + 3)});
  Tensor u = Tensor::from_ints({0, 65535}, {2}, DType::U16);
  REQUIRE(u.to_float_vector() == std::vector<float>{0.0f, 65535.0f});
  Tensor i = Tensor::from_ints({-7, 2147483647}, {2}, DType::I32);
  REQUIRE(i.to_int_vector() == std::vector<int64_t>{-7, 2147483647});
}

TEST_CASE("core: counter-based RNG is deterministic and well distributed", "[cpu][core]") {
  Tensor a = Tensor::randn({10000}, 42);
  Tensor b = Tensor::randn({10000}, 42);
  Tensor c = Tensor::randn({10000}, 43);
  REQUIRE(a.to_float_vector() == b.to_float_vector());
  REQUIRE(a.to_float_vector() != c.to_float_vector());
  double mean = 0, var = 0;
  for (float x : a.to_float_vector()) mean += x;
  mean /= 10000;
  for (float x : a.to_float_vector()) var += (x - mean) * (x - mean);
  var /= 10000;
  REQUIRE(std::abs(mean) < 0.05);
  REQUIRE(std::abs(var - 1.0) < 0.05);
  // Element i does not depend on the tensor's size or dtype (before rounding).
  REQUIRE(Tensor::randn({5}, 42).to_float_vector()[3] == a.to_float_vector()[3]);
  REQUIRE(Tensor::randn({5}, 42, DType::F64).to_double_vector()[3] == Approx(rng::normal(42, 3)));
}

TEST_CASE("core: errors name the op and shapes", "[cpu][core]") {
  Tensor a = Tensor::zeros({2, 3});
  Tensor b = Tensor::zeros({3, 2});
  try {
    a.copy_(b);
    FAIL("expected an error");
  } catch (const Error& e) {
    std::string msg = e.what();
    REQUIRE(msg.find("copy_") != std::string::npos);
    REQUIRE(msg.find("[2, 3]") != std::string::npos);
    REQUIRE(msg.find("[3, 2]") != std::string::npos);
  }
  REQUIRE_THROWS_WITH(a.narrow(1, 2, 5), Catch::Contains("out of bounds"));
  REQUIRE_THROWS_WITH(a.view({5}), Catch::Contains("does not match"));
  REQUIRE_THROWS_WITH(dtype_from_name("f16"), Catch::Contains("expected one of"));
  REQUIRE_THROWS_WITH(Device::parse("tpu"), Catch::Contains("expected cpu, cuda or cuda:N"));
}

TEST_CASE("core: strided copies between layouts", "[cpu][core]") {
  Tensor src = Tensor::randn({3, 5, 7}, 1);
  Tensor dst = Tensor::zeros({3, 7, 5}).transpose(1, 2);  // non-contiguous destination
  dst.copy_(src);
  REQUIRE(dst.contiguous().to_float_vector() == src.to_float_vector());
}
