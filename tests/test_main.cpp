// Catch2 main shared by the cpu and gpu test binaries. The gpu binary exits with 77 (CTest's
// SKIP_RETURN_CODE) when no CUDA device is present, so missing hardware reads as "skipped".
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#ifdef MODA_GPU_TESTS
#include "core/device.h"
#endif

int main(int argc, char** argv) {
#ifdef MODA_GPU_TESTS
  bool listing = false;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]).rfind("--list", 0) == 0) listing = true;
  if (!listing && moda::cuda_device_count() == 0) {
    std::fprintf(stderr, "no CUDA device: gpu tests skipped\n");
    return 77;
  }
#endif
  return Catch::Session().run(argc, argv);
}
