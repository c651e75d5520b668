#pragma once
// GPU tests of the cuDNN attention path: a build without cuDNN skips them (ctest shows them
// skipped, tests/CMakeLists.txt); a build WITH cuDNN on a GPU that cannot use it fails, since that
// must not pass as a test that ran nothing.
#include <catch2/catch.hpp>

#include <iostream>
#include <string>

#include "kernels/cuda/cudnn_sdpa.h"

namespace moda::test {

inline bool skip_without_cudnn() {
#ifdef MODA_HAVE_CUDNN
  std::string why;
  const bool usable = cuda::cudnn_sdpa_available(&why);
  INFO("cuDNN SDPA not usable: " << why);
  REQUIRE(usable);
  return false;
#else
  std::cout << "MODA_GPU_TEST_SKIPPED: this build has no cuDNN\n";
  return true;
#endif
}

}  // namespace moda::test
