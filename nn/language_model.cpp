#include "nn/language_model.h"

#include <set>

#include "autograd/checkpoint.h"
#include "autograd/graph.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace moda::nn {

static const ModelConfig& validated(const ModelConfig& c) {
  ModelConfig copy = c;
  copy.validate();
  MODA_CHECK(copy.n_kv_heads == c.n_kv_heads && copy.head_dim == c.head_dim,
             "LanguageModel: config has unresolved defaults (n_kv_heads / head_dim = 0); call validate() first");
  return c;
}

LanguageModel::LanguageModel(const ModelConfig& config, const ModelInit& init)
    : config_(validated(config)),
      layout_(stream_layout(config_)),
      embed_(register_module<Embedding>("embed", config_.vocab_size, config_.d_model)) {
  for (int64_t l = 0; l < config_.n_layers; ++l)
    blocks_.push_back(&register_module<Block>("blocks." + std::to_string(l), config_, l, layout_.layers[l]));
  final_norm_ = &register_module<RMSNorm>("final_norm", config_.d_model, config_.norm_eps);
  if (!config_.tie_embeddings)
    lm_head_ = &register_module<Linear>("lm_head", config_.d_model, config_.vocab_size, /*bias=*/false);

  // One group per block; the embedding and the head apart (the trainer shards each group).
  auto with_prefix = [](const std::string& prefix, std::vector<Parameter> ps) {
    std::vector<Parameter> out;
    for (auto& p : ps)
      if (p.name.rfind(prefix, 0) == 0) out.push_back(p);
    return out;
  };
  std::vector<Parameter> all = parameters();
  groups_.push_back(make_param_group("embed", with_prefix("embed.", all), init.device, init.dtype));
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    std::string name = "blocks." + std::to_string(l);
    groups_.push_back(make_param_group(name, with_prefix(name + ".", all), init.device, init.dtype));
  }
  std::vector<Parameter> head = with_prefix("final_norm.", all), lm = with_prefix("lm_head.", all);
  head.insert(head.end(), lm.begin(), lm.end());
  groups_.push_back(make_param_group("head", head, init.device, init.dtype));
  size_t grouped = 0;
  for (const auto& g : groups_) grouped += g.params.size();
  MODA_CHECK(grouped == all.size(), "LanguageModel: ", all.size(), " parameters but ", grouped, " in groups");
  init_weights(init.seed);
}

Device LanguageModel::device() const { return groups_.front().flat.device(); }
DType LanguageModel::dtype() const { return groups_.front().flat.dtype(); }

void LanguageModel::init_weights(uint64_t seed) {
  for (const auto& p : parameters()) init_parameter(p, seed, config_.init_std);
}

void LanguageModel::zero_grad() {
  for (auto& g : groups_) g.zero_grad();
}

void LanguageModel::to(Device device, DType dtype) {
  for (auto& g : groups_) g.to(device, dtype);
}

void LanguageModel::check_ids(const Tensor& ids) const {
  MODA_CHECK(ids.dim() == 2 && (ids.dtype() == DType::I32 || ids.dtype() == DType::I64),
             "LanguageModel: ids must be i32/i64 [B, T], got ", ids.describe());
  MODA_CHECK(ids.device() == device(), "LanguageModel: ids on ", ids.device().str(), ", model on ", device().str());
}

Tensor LanguageModel::logits_over(const Tensor& ids, StreamStep& step, bool last_only) const {
  auto before = [this](size_t g) {
    if (hooks_.before_forward) hooks_.before_forward(g);
  };
  auto after = [this](size_t g) {
    if (hooks_.after_forward) hooks_.after_forward(g);
  };
  before(0);
  Tensor x = embed_.forward(ids);
  after(0);  // a tied head reads the embedding again; the hooks keep the first group (see header)
  for (size_t i = 0; i < blocks_.size(); ++i) {
    before(i + 1);
    x = checkpoint_blocks_ ? checkpointed_block(i, x, step) : blocks_[i]->forward(x, step);
    after(i + 1);
  }
  const size_t head = groups_.size() - 1;
  before(head);
  if (last_only) x = x.narrow(1, x.size(1) - 1, 1).contiguous();  // decoding: the next token's logits only
  x = final_norm_->forward(x);
  Tensor logits = lm_head_ ? lm_head_->forward(x) : ops::linear(x, embed_.weight());
  after(head);
  return logits;
}

Tensor LanguageModel::checkpointed_block(size_t i, const Tensor& x, StreamStep& step) const {
  // The forward writes the block's slots through the live `step` (later blocks read them); the
  // recomputation in backward through a copy taken now, which holds the stream and the tokens of
  // the slots written before this block, as the first run saw them. The tokens of the slots the
  // recomputation writes are side roots: later blocks read those slots, so their gradients wait
  // in the stream's buffers, and a slot read by no part of this block (its FFN and attention
  // depth projections) is reached from nothing else.
  auto before_block = std::make_shared<StreamStep>(step);
  auto first_run = std::make_shared<bool>(true);
  const Block* block = blocks_[i];
  auto fn = [block, &step, before_block, first_run](const Tensor& in, std::vector<Tensor>& side_roots) {
    if (*first_run) {
      *first_run = false;
      return block->forward(in, step);
    }
    StreamStep again = *before_block;
    Tensor out = block->forward(in, again);
    for (size_t s = 0; s < again.tokens.size(); ++s)
      if (again.tokens[s].defined() && !before_block->tokens[s].defined() && again.tokens[s].requires_grad())
        side_roots.push_back(again.tokens[s]);
    return out;
  };
  return checkpoint(fn, x, {groups_[i + 1].flat});
}

LanguageModel::Output LanguageModel::run(const Tensor& ids, const Tensor& targets) const {
  check_ids(ids);
  const int64_t B = ids.size(0), T = ids.size(1), V = config_.vocab_size;
  MODA_CHECK(config_.max_seq_len == 0 || T <= config_.max_seq_len, "LanguageModel: sequence length ", T,
             " exceeds model.max_seq_len = ", config_.max_seq_len);

  StreamStep step(B, T, layout_.num_slots, config_.n_kv_heads, config_.head_dim, dtype(), device());
  Output out;
  out.logits = logits_over(ids, step, /*last_only=*/false);
  if (targets.defined()) {
    MODA_CHECK(targets.shape() == ids.shape(), "LanguageModel: targets ", targets.describe(), " do not match ids ",
               ids.describe());
    MODA_CHECK(targets.device() == device(), "LanguageModel: targets on ", targets.device().str(), ", model on ",
               device().str());
    out.loss = ops::cross_entropy(reshape(out.logits, {B * T, V}), targets.contiguous().view({B * T}));
  }
  return out;
}

DecodeCache LanguageModel::new_decode_cache(int64_t batch, int64_t capacity) const {
  MODA_CHECK(batch >= 1 && capacity >= 1, "new_decode_cache: batch and capacity must be >= 1, got ", batch, " and ",
             capacity);
  MODA_CHECK(config_.max_seq_len == 0 || capacity <= config_.max_seq_len, "new_decode_cache: ", capacity,
             " tokens exceed model.max_seq_len = ", config_.max_seq_len);
  return DecodeCache(std::make_shared<DepthStream>(batch, capacity, layout_.num_slots, config_.n_kv_heads,
                                                   config_.head_dim, dtype(), device()));
}

Tensor LanguageModel::decode(const Tensor& ids, DecodeCache& cache, bool last_only) const {
  check_ids(ids);
  const int64_t n = ids.size(1), first = cache.length();
  MODA_CHECK(ids.size(0) == cache.batch(), "LanguageModel::decode: ids ", ids.describe(), " for a cache of batch ",
             cache.batch());
  MODA_CHECK(cache.stream()->device() == device() && cache.stream()->dtype() == dtype(),
             "LanguageModel::decode: the cache holds ", dtype_name(cache.stream()->dtype()), " on ",
             cache.stream()->device().str(), ", the model is ", dtype_name(dtype()), " on ", device().str());
  MODA_CHECK(n >= 1 && first + n <= cache.capacity(), "LanguageModel::decode: ", n, " tokens after ", first,
             " cached do not fit the cache's ", cache.capacity());
  NoGradGuard no_grad;
  StreamStep step(cache.stream(), first, n);
  Tensor logits = logits_over(ids, step, last_only);
  cache.advance(n);
  return logits;
}

NamedTensors LanguageModel::state_dict() const {
  NamedTensors out;
  for (const auto& p : parameters()) out.emplace_back(p.name, p.tensor.detach());
  return out;
}

void LanguageModel::load_state_dict(const std::map<std::string, Tensor>& tensors) {
  std::set<std::string> expected;
  for (const auto& p : parameters()) {
    expected.insert(p.name);
    auto it = tensors.find(p.name);
    MODA_CHECK(it != tensors.end(), "load_state_dict: missing parameter '", p.name, "' ", shape_str(p.tensor.shape()));
    MODA_CHECK(it->second.shape() == p.tensor.shape(), "load_state_dict: '", p.name, "' has shape ",
               shape_str(it->second.shape()), ", the model expects ", shape_str(p.tensor.shape()));
  }
  for (const auto& [name, t] : tensors)
    MODA_CHECK(expected.count(name), "load_state_dict: unexpected tensor '", name, "' ", shape_str(t.shape()),
               " (not a parameter of this ", variant_name(config_.variant), " model)");
  for (const auto& p : parameters()) {
    Tensor dst = p.tensor.detach();  // a plain copy into the parameter's storage, outside the graph
    dst.copy_(tensors.at(p.name));
  }
}

void LanguageModel::load_state_dict(const NamedTensors& tensors) {
  std::map<std::string, Tensor> m;
  for (const auto& [name, t] : tensors) {
    MODA_CHECK(!m.count(name), "load_state_dict: tensor '", name, "' given twice");
    m.emplace(name, t);
  }
  load_state_dict(m);
}

std::unique_ptr<LanguageModel> make_language_model(ModelConfig config, const ModelInit& init) {
  config.validate();
  return std::make_unique<LanguageModel>(config, init);
}

}  // namespace moda::nn
