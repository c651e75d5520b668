#pragma once
// Model configs and token ids that several model tests share (CPU and GPU).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "nn/model_config.h"

namespace moda::testing {

// n ids uniform in [0, vocab), from a device-independent seed.
inline std::vector<int64_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> ids;
  for (double x : Tensor::uniform({n}, seed, 0.0, double(vocab)).to_double_vector())
    ids.push_back(std::min<int64_t>(vocab - 1, int64_t(x)));
  return ids;
}

// The small model the CUDA model tests run: 3 layers (the last reads depth entries of two
// earlier ones), head_dim 64 (what the fused kernel supports), GQA 2/1.
inline nn::ModelConfig gpu_test_config(nn::Variant v, nn::NormPlacement n) {
  nn::ModelConfig c;
  c.vocab_size = 97;
  c.d_model = 128;
  c.n_layers = 3;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.ffn_hidden = 176;
  c.variant = v;
  c.norm = n;
  c.qk_norm = true;
  c.bias = true;
  c.depth_kv_bias = true;
  c.init_std = 0.1;
  c.validate();
  return c;
}

}  // namespace moda::testing
