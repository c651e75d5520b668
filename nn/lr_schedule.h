#pragma once
// Learning rate: linear warm-up from 0 to `peak` over `warmup` steps, then a cosine from `peak` down
// to `floor` at step `total` (the paper: 3e-4 -> 3e-5 with 2k warm-up steps). Steps are 1-based.
#include <cstdint>

namespace moda::nn {

struct LrSchedule {
  double peak = 3e-4;
  double floor = 3e-5;
  int64_t warmup = 0;
  int64_t total = 1;

  double at(int64_t step) const;
};

}  // namespace moda::nn
