#pragma once
// The MoDA language model: embedding -> blocks (sharing one depth stream per forward pass) ->
// final RMSNorm -> logits (tied: embed.weight; untied: lm_head.weight) -> cross-entropy.
//
// State-dict names (docs/model.md lists them all):
//   embed.weight                         [V, D]
//   blocks.{l}.attn_norm.weight          [D]
//   blocks.{l}.attn.{q,k,v,o}_proj.{weight,bias}, blocks.{l}.attn.{q,k}_norm.weight
//   blocks.{l}.attn_depth.{k,v}_proj.{weight,bias}     depth_kv_ffn_attn
//   blocks.{l}.mlp_norm.weight           [D]
//   blocks.{l}.mlp.gate_up_proj.{weight,bias} [2h, D], blocks.{l}.mlp.down_proj.{weight,bias} [D, h]
//   blocks.{l}.ffn_depth.{k,v}_proj.{weight,bias}      depth_kv_ffn, depth_kv_ffn_attn
//   final_norm.weight                    [D]
//   lm_head.weight                       [V, D]   only when tie_embeddings is false
// Parameter groups (one flat buffer each, and one flat gradient buffer each): "embed",
// "blocks.0" ... "blocks.{L-1}", "head" (final_norm and lm_head).
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "nn/block.h"
#include "nn/decode_cache.h"

namespace moda::nn {

struct ModelInit {
  uint64_t seed = 0;  // per-parameter seeds derive from (seed, name): device independent
  Device device = Device::cpu();
  DType dtype = DType::F32;  // f32/f64 on the CPU, bf16 (or f32) on CUDA
};

class LanguageModel : public Module {
 public:
  // Builds, binds every group on init.device in init.dtype and initialises the weights.
  explicit LanguageModel(const ModelConfig& config, const ModelInit& init = {});

  struct Output {
    Tensor logits;  // [B, T, V]
    Tensor loss;    // {1} f32 (f64 for f64 models); undefined without targets
  };
  // ids [B, T] (i32/i64); targets [B, T] (i32/i64, -1 = ignored) or undefined.
  Output run(const Tensor& ids, const Tensor& targets = Tensor()) const;
  Tensor forward(const Tensor& ids, const Tensor& targets) const { return run(ids, targets).loss; }
  Tensor logits(const Tensor& ids) const { return run(ids).logits; }

  // Incremental decoding (docs/generate.md). A cache for `batch` rows and up to `capacity` tokens
  // (at most model.max_seq_len when that is set), in the model's dtype and on its device.
  DecodeCache new_decode_cache(int64_t batch, int64_t capacity) const;
  // Runs ids [B, n] at positions [cache.length(), cache.length() + n) against the tokens cached
  // before them, appends their K,V and depth entries to the cache and returns the logits [B, n, V]
  // (with last_only: [B, 1, V], the last position's only). Records no graph (NoGradGuard inside).
  // A prefill of n tokens followed by single tokens gives the logits of one run() over all of them.
  Tensor decode(const Tensor& ids, DecodeCache& cache, bool last_only = false) const;

  const ModelConfig& config() const { return config_; }
  const StreamLayout& layout() const { return layout_; }
  Device device() const;
  DType dtype() const;

  // Flat parameter groups in model order; parameters() lists the same tensors in the same order.
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Called by run() around each group's use: before_forward(g) before group g's first use in the
  // forward, after_forward(g) after its last (groups in param_groups() order: embed, blocks...,
  // head). Sharded training gathers a group's parameters there and may free them again
  // (distributed/parameter_sharding.h); without hooks the groups are simply always present.
  struct GroupHooks {
    std::function<void(size_t group)> before_forward, after_forward;
  };
  void set_group_hooks(GroupHooks hooks) { hooks_ = std::move(hooks); }

  // Activation checkpointing per block (train.activation_checkpointing: block): a block's forward
  // keeps only its input, and its backward runs the block again first (autograd/checkpoint.h).
  // Same gradients, one more forward per step, far less activation memory. Off by default.
  void set_activation_checkpointing(bool on) { checkpoint_blocks_ = on; }
  bool activation_checkpointing() const { return checkpoint_blocks_; }

  void zero_grad();                     // every group: flat grad zeroed, param grads = views
  void to(Device device, DType dtype);  // moves every group; drops gradients
  void init_weights(uint64_t seed);     // normal(0, init_std) weights, ones for norms, zero biases

  NamedTensors state_dict() const;  // (name, view of the live parameter) in parameters() order
  // Copies values in (any device / dtype). Missing or unexpected names and shape mismatches are
  // errors naming them.
  void load_state_dict(const std::map<std::string, Tensor>& tensors);
  void load_state_dict(const NamedTensors& tensors);

 private:
  void check_ids(const Tensor& ids) const;
  // Embedding, the blocks over `step`, final norm and head: logits [B, T, V] (last_only: [B, 1, V]).
  Tensor logits_over(const Tensor& ids, StreamStep& step, bool last_only) const;
  Tensor checkpointed_block(size_t i, const Tensor& x, StreamStep& step) const;

  ModelConfig config_;
  StreamLayout layout_;
  Embedding& embed_;
  std::vector<Block*> blocks_;
  RMSNorm* final_norm_ = nullptr;
  Linear* lm_head_ = nullptr;
  std::vector<ParamGroup> groups_;
  GroupHooks hooks_;
  bool checkpoint_blocks_ = false;
};

// The factory the trainer uses: validates a copy of the config and builds the model.
std::unique_ptr<LanguageModel> make_language_model(ModelConfig config, const ModelInit& init = {});

}  // namespace moda::nn
