#pragma once
// GPU tests: a device copy of a host vector of doubles, stored as bf16 or fp32, read back as
// doubles; NaN-filled instead when `poison` (outputs a kernel must overwrite). Checked CUDA calls.
#include <catch2/catch.hpp>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/bf16.h"

namespace moda::test {

inline void cuda_ok(cudaError_t e, const char* what) {
  INFO(what << ": " << cudaGetErrorString(e));
  REQUIRE(e == cudaSuccess);
}

template <typename E>
struct DeviceVec {
  E* ptr = nullptr;
  size_t n = 0;
  explicit DeviceVec(const std::vector<double>& host, bool poison = false) : n(host.size()) {
    std::vector<E> tmp(n);
    for (size_t i = 0; i < n; ++i) {
      const double x = poison ? std::nan("") : host[i];
      if constexpr (std::is_same_v<E, bf16>)
        tmp[i] = float_to_bf16(float(x));
      else
        tmp[i] = E(x);
    }
    cuda_ok(cudaMalloc(reinterpret_cast<void**>(&ptr), std::max<size_t>(n, 1) * sizeof(E)), "cudaMalloc");
    cuda_ok(cudaMemcpy(ptr, tmp.data(), n * sizeof(E), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  }
  ~DeviceVec() { cudaFree(ptr); }
  DeviceVec(const DeviceVec&) = delete;
  DeviceVec& operator=(const DeviceVec&) = delete;
  std::vector<double> host() const {
    std::vector<E> tmp(n);
    cuda_ok(cudaMemcpy(tmp.data(), ptr, n * sizeof(E), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
    std::vector<double> out(n);
    for (size_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<E, bf16>)
        out[i] = double(bf16_to_float(tmp[i]));
      else
        out[i] = double(tmp[i]);
    }
    return out;
  }
};

}  // namespace moda::test
