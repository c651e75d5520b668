#pragma once
// Named ranges for the Nsight tools (NVTX 3, header-only, from the CUDA toolkit; no-ops in a build
// without CUDA and nearly free when no tool is attached). The trainer marks each training step
// "step N", so one step can be profiled alone:
//   ncu --nvtx --nvtx-include "step 3/" moda train ...      (tools/gpu-profile-step.sh)
//   nsys profile moda train ...                              (the steps show on the timeline)
#include <string>

#ifdef MODA_HAVE_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace moda {

class NvtxRange {
 public:
  explicit NvtxRange([[maybe_unused]] const std::string& name) {
#ifdef MODA_HAVE_CUDA
    nvtxRangePushA(name.c_str());
#endif
  }
  ~NvtxRange() {
#ifdef MODA_HAVE_CUDA
    nvtxRangePop();
#endif
  }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace moda
