#include "distributed/train_config.h"

#include <glob.h>

#include <algorithm>

#include "autograd/attention_l0.h"
#include "core/error.h"
#include "core/json_config.h"
#include "data/loader.h"

namespace moda {

std::vector<std::string> expand_shards(const std::string& pattern, const std::string& field) {
  glob_t g{};
  int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  MODA_CHECK(!out.empty(), field, ": no file matches '", pattern, "'");
  std::sort(out.begin(), out.end());
  return out;
}

static std::vector<std::string> shard_list(const nlohmann::json& v, const std::string& field) {
  std::vector<std::string> out;
  auto add = [&](const nlohmann::json& item) {
    MODA_CHECK(item.is_string(), field, ": expected a path or glob string, got ", item.dump());
    auto files = expand_shards(item.get<std::string>(), field);
    out.insert(out.end(), files.begin(), files.end());
  };
  if (v.is_array())
    for (const auto& item : v) add(item);
  else
    add(v);
  return out;
}

namespace {

DataConfig read_data(const nlohmann::json& section) {
  DataConfig dc;
  FieldReader data(section, "data");
  dc.train = shard_list(data.raw("train"), "data.train");
  if (data.has("val")) {
    const auto& val = data.raw("val");
    MODA_CHECK(val.is_object(), "data.val: expected an object {name: shards}, got ", val.dump());
    for (auto& [name, shards] : val.items()) dc.val[name] = shard_list(shards, "data.val." + name);
  }
  dc.seq_len = data.get<int64_t>("seq_len", dc.seq_len);
  data.check(dc.seq_len >= 1, "seq_len", dc.seq_len, "must be >= 1");
  data.check(dc.seq_len <= data::kMaxLoaderSeqLen, "seq_len", dc.seq_len,
             "must be <= " + std::to_string(data::kMaxLoaderSeqLen));
  data.finish();
  return dc;
}

OptimConfig read_optim(const nlohmann::json& section) {
  FieldReader o(section, "optim");
  OptimConfig oc;
  oc.lr = o.get("lr", oc.lr);
  oc.min_lr = o.get("min_lr", oc.min_lr);
  oc.warmup_steps = o.get("warmup_steps", oc.warmup_steps);
  oc.beta1 = o.get("beta1", oc.beta1);
  oc.beta2 = o.get("beta2", oc.beta2);
  oc.eps = o.get("eps", oc.eps);
  oc.weight_decay = o.get("weight_decay", oc.weight_decay);
  oc.grad_clip = o.get("grad_clip", oc.grad_clip);
  o.check(oc.lr > 0, "lr", oc.lr, "must be > 0");
  o.check(oc.min_lr >= 0 && oc.min_lr <= oc.lr, "min_lr", oc.min_lr, "must be in [0, lr]");
  o.check(oc.warmup_steps >= 0, "warmup_steps", oc.warmup_steps, "must be >= 0");
  o.check(oc.beta1 >= 0 && oc.beta1 < 1, "beta1", oc.beta1, "must be in [0, 1)");
  o.check(oc.beta2 >= 0 && oc.beta2 < 1, "beta2", oc.beta2, "must be in [0, 1)");
  o.check(oc.eps > 0, "eps", oc.eps, "must be > 0");
  o.check(oc.weight_decay >= 0, "weight_decay", oc.weight_decay, "must be >= 0");
  o.check(oc.grad_clip >= 0, "grad_clip", oc.grad_clip, "must be >= 0 (0 disables clipping)");
  o.finish();
  return oc;
}

TrainerConfig read_trainer(const nlohmann::json& section, int64_t seq_len) {
  FieldReader t(section, "train");
  TrainerConfig tc;
  tc.steps = t.get("steps", tc.steps);
  tc.global_batch = t.get("global_batch", tc.global_batch);
  tc.micro_batch = t.get("micro_batch", tc.micro_batch);
  tc.eval_every = t.get("eval_every", tc.eval_every);
  tc.eval_max_batches = t.get("eval_max_batches", tc.eval_max_batches);
  tc.checkpoint_every = t.get("checkpoint_every", tc.checkpoint_every);
  tc.keep_checkpoints = t.get("keep_checkpoints", tc.keep_checkpoints);
  tc.async_checkpoint = t.get("async_checkpoint", tc.async_checkpoint);
  tc.activation_checkpointing = t.get("activation_checkpointing", tc.activation_checkpointing);
  tc.attention_l0 = t.get("attention_l0", tc.attention_l0);
  tc.log_every = t.get("log_every", tc.log_every);
  tc.seed = t.get("seed", tc.seed);
  tc.device = t.get("device", tc.device);
  tc.collective_timeout_s = t.get("collective_timeout_s", tc.collective_timeout_s);
  t.check(tc.activation_checkpointing == "none" || tc.activation_checkpointing == "block", "activation_checkpointing",
          tc.activation_checkpointing, "must be \"none\" or \"block\"");
  ops::parse_attention_l0(tc.attention_l0, "train.attention_l0");  // the one list of the names
  t.check(tc.steps >= 1, "steps", tc.steps, "must be >= 1");
  t.check(tc.micro_batch >= 1, "micro_batch", tc.micro_batch, "must be >= 1");
  t.check(tc.global_batch >= tc.micro_batch && tc.global_batch % tc.micro_batch == 0, "global_batch", tc.global_batch,
          "must be a positive multiple of micro_batch (" + std::to_string(tc.micro_batch) + ")");
  t.check(tc.eval_every >= 0, "eval_every", tc.eval_every, "must be >= 0");
  t.check(tc.eval_max_batches >= 0, "eval_max_batches", tc.eval_max_batches, "must be >= 0");
  t.check(tc.checkpoint_every >= 0, "checkpoint_every", tc.checkpoint_every, "must be >= 0");
  t.check(tc.keep_checkpoints >= 0, "keep_checkpoints", tc.keep_checkpoints, "must be >= 0 (0 keeps all)");
  t.check(tc.log_every >= 1, "log_every", tc.log_every, "must be >= 1");
  t.check(tc.device == "auto" || tc.device == "cpu" || tc.device.rfind("cuda", 0) == 0, "device", tc.device,
          "must be auto, cpu, cuda or cuda:N");
  t.check(tc.collective_timeout_s > 0, "collective_timeout_s", tc.collective_timeout_s, "must be > 0 (seconds)");
  // Checked before anything is allocated: micro_batch x seq_len tokens are allocated per step.
  t.check(tc.micro_batch <= data::kMaxLoaderBatchTokens / seq_len, "micro_batch", tc.micro_batch,
          "micro_batch x data.seq_len must be <= " + std::to_string(data::kMaxLoaderBatchTokens) + " tokens");
  t.finish();
  return tc;
}

ParallelConfig read_parallel(const nlohmann::json& section) {
  FieldReader p(section, "parallel");
  ParallelConfig pc;
  pc.sharding = p.get("sharding", pc.sharding);
  pc.reshard_after_forward = p.get("reshard_after_forward", pc.reshard_after_forward);
  pc.reduce_dtype = p.get("reduce_dtype", pc.reduce_dtype);
  p.check(pc.sharding == "auto" || pc.sharding == "full", "sharding", pc.sharding, "must be \"auto\" or \"full\"");
  p.check(pc.reduce_dtype == "fp32" || pc.reduce_dtype == "bf16", "reduce_dtype", pc.reduce_dtype,
          "must be \"fp32\" or \"bf16\"");
  p.finish();
  return pc;
}

// The whole config after defaults, as saved in the run folder and compared on resume.
nlohmann::json resolved_config(const nlohmann::json& doc, const TrainConfig& c) {
  nlohmann::json r = doc;
  const auto& oc = c.optim;
  const auto& tc = c.train;
  r["model"] = nn::model_config_to_json(c.model);
  r["optim"] = {
      {"lr", oc.lr},       {"min_lr", oc.min_lr}, {"warmup_steps", oc.warmup_steps}, {"beta1", oc.beta1},
      {"beta2", oc.beta2}, {"eps", oc.eps},       {"weight_decay", oc.weight_decay}, {"grad_clip", oc.grad_clip}};
  r["train"] = {{"steps", tc.steps},
                {"global_batch", tc.global_batch},
                {"micro_batch", tc.micro_batch},
                {"eval_every", tc.eval_every},
                {"eval_max_batches", tc.eval_max_batches},
                {"checkpoint_every", tc.checkpoint_every},
                {"keep_checkpoints", tc.keep_checkpoints},
                {"async_checkpoint", tc.async_checkpoint},
                {"activation_checkpointing", tc.activation_checkpointing},
                {"attention_l0", tc.attention_l0},
                {"log_every", tc.log_every},
                {"seed", tc.seed},
                {"device", tc.device},
                {"collective_timeout_s", tc.collective_timeout_s}};
  const auto& pc = c.parallel;
  r["parallel"] = {{"sharding", pc.sharding},
                   {"reshard_after_forward", pc.reshard_after_forward},
                   {"reduce_dtype", pc.reduce_dtype}};
  return r;
}

}  // namespace

TrainConfig train_config_from_json(const nlohmann::json& doc) {
  TrainConfig c;
  FieldReader top(doc, "config");
  c.model = nn::model_config_from_json(top.require<nlohmann::json>("model"));
  c.data = read_data(top.require<nlohmann::json>("data"));
  c.optim = read_optim(top.get<nlohmann::json>("optim", nlohmann::json::object()));
  c.train = read_trainer(top.get<nlohmann::json>("train", nlohmann::json::object()), c.data.seq_len);
  c.parallel = read_parallel(top.get<nlohmann::json>("parallel", nlohmann::json::object()));
  top.finish();
  if (c.model.max_seq_len > 0)
    MODA_CHECK(c.data.seq_len <= c.model.max_seq_len, "data.seq_len: value ", c.data.seq_len,
               " is invalid: must be <= model.max_seq_len (", c.model.max_seq_len, ")");
  c.resolved = resolved_config(doc, c);
  return c;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json doc = read_json_file(path);  // depth- and size-limited
  for (const auto& o : overrides) apply_override(doc, o);
  try {
    return train_config_from_json(doc);
  } catch (const Error& e) {
    MODA_FAIL(path, ": ", e.what());
  } catch (const nlohmann::json::exception& e) {  // a reader that skipped a type check: still our words
    MODA_FAIL(path, ": a field has an unexpected type or shape: ", json_error_text(e));
  }
}

}  // namespace moda
