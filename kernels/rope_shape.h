#pragma once
// Descriptors of rotary position embedding shared by the CPU reference (kernels/cpu/rope.h) and
// the CUDA kernel (kernels/cuda/rope.h): a [batch, tokens, heads, head_dim] view with explicit
// batch/token/head strides in elements (head_dim is contiguous), because q and k are often views
// into a larger projection buffer. Plain structs, no device code: included by .cpp and .cu files.
#include <cstdint>

namespace moda {

struct RopeShape {
  int64_t batch = 1, tokens = 1, heads = 1, head_dim = 2;  // head_dim must be even
  double theta = 10000.0;
  int64_t pos_offset = 0;  // position of token 0 (e.g. when decoding after a prefix)
};

struct RopeStrides {
  int64_t batch = 0, token = 0, head = 0;  // element strides; the head_dim stride is 1
  static RopeStrides contiguous(const RopeShape& s) {
    return {s.tokens * s.heads * s.head_dim, s.heads * s.head_dim, s.head_dim};
  }
};

}  // namespace moda
