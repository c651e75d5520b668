// Catch2 main shared by the cpu and gpu test binaries. Without a CUDA device the gpu binary prints
// a marker line that CTest's SKIP_REGULAR_EXPRESSION turns into "skipped" (tests/CMakeLists.txt)
// and exits non-zero, so outside CTest a skipped run is never mistaken for a pass. The marker, not
// the exit code, carries the meaning: Catch2 itself exits with the number of failed assertions.
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
    std::printf("MODA_GPU_TESTS_SKIPPED: no CUDA device\n");
    return 1;
  }
#endif
  return Catch::Session().run(argc, argv);
}
