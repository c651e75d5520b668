#pragma once
// The one CUDA error check: MODA_CUDA_CHECK(call, op) / MODA_CUBLAS_CHECK(call, op) turn a CUDA or
// cuBLAS status into moda::Error naming the failed call and the op it served; check_launch(op)
// goes after every kernel launch. Used by core/, kernels/cuda/, apps/ and tests/. Only
// core/error.h is included (no fmt/spdlog): nvcc 13 compiles this in every .cu file.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace moda {

inline void check_cuda(cudaError_t status, const char* call, const char* op) {
  if (status != cudaSuccess)
    MODA_FAIL("CUDA error in ", op, ": ", call, " failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status),
              ")");
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* op) {
  if (status != CUBLAS_STATUS_SUCCESS)
    MODA_FAIL("cuBLAS error in ", op, ": ", call, " failed: ", cublasGetStatusName(status), " (",
              cublasGetStatusString(status), ")");
}

// Call after every kernel launch: reports launch-configuration errors with the op's name.
inline void check_launch(const char* op) { check_cuda(cudaGetLastError(), "kernel launch", op); }

}  // namespace moda

#define MODA_CUDA_CHECK(call, op) ::moda::check_cuda((call), #call, (op))
#define MODA_CUBLAS_CHECK(call, op) ::moda::check_cublas((call), #call, (op))
