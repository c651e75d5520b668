#include "nn/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace moda::nn {

double LrSchedule::at(int64_t step) const {
  if (warmup > 0 && step <= warmup) return peak * static_cast<double>(step) / static_cast<double>(warmup);
  if (step >= total) return floor;
  double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(total - warmup, 1));
  return floor + 0.5 * (peak - floor) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace moda::nn
