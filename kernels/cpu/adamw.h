#pragma once
// One fused AdamW step on the CPU (double math); the formula and AdamWParams are in
// kernels/adamw_shape.h.
#include <cstdint>

#include "core/bf16.h"
#include "kernels/adamw_shape.h"

namespace moda::cpu {

// p, g, m, v: n elements. p_bf16 may be null. grad_scale multiplies g (gradient clipping fused in).
template <typename T>
void adamw_step(const AdamWParams& hp, T* p, const T* g, T* m, T* v, int64_t n, bf16* p_bf16 = nullptr,
                double grad_scale = 1.0);

}  // namespace moda::cpu
