#include "core/device.h"

#include "core/error.h"

#ifdef MODA_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace moda {

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      return cuda(std::stoi(s.substr(5)));
    } catch (const std::exception&) {
    }
  }
  MODA_FAIL("unknown device '", s, "'; expected cpu, cuda or cuda:N");
}

int cuda_device_count() {
#ifdef MODA_HAVE_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device / no driver" error
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

bool cuda_available() { return cuda_device_count() > 0; }

void set_cuda_device(int index) {
#ifdef MODA_HAVE_CUDA
  const cudaError_t rc = cudaSetDevice(index);
  MODA_CHECK(rc == cudaSuccess, "cudaSetDevice(", index, ") failed: ", cudaGetErrorString(rc));
#else
  (void)index;
#endif
}

size_t cuda_device_memory_used(int device) {
#ifdef MODA_HAVE_CUDA
  int previous = 0;
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaGetDevice(&previous) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) return 0;
  const bool ok = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
  cudaSetDevice(previous);
  return ok ? total_bytes - free_bytes : 0;
#else
  (void)device;
  return 0;
#endif
}

}  // namespace moda
