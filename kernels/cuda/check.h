#pragma once
// Turns CUDA / cuBLAS status codes into moda::Error naming the failed call and the op it served.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace moda::cuda {

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

}  // namespace moda::cuda

#define MODA_CUDA_CHECK(call, op) ::moda::cuda::check_cuda((call), #call, (op))
#define MODA_CUBLAS_CHECK(call, op) ::moda::cuda::check_cublas((call), #call, (op))
