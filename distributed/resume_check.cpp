#include "distributed/resume_check.h"

#include "core/error.h"

namespace moda {

const std::vector<std::string>& resumable_fields() {
  static const std::vector<std::string> fields = {"train.steps",  // the schedule's end moves with it
                                                  "train.eval_every",
                                                  "train.eval_max_batches",
                                                  "train.checkpoint_every",
                                                  "train.keep_checkpoints",
                                                  "train.async_checkpoint",
                                                  "train.activation_checkpointing",  // memory vs compute only
                                                  "train.attention_l0",              // which kernels, same operator
                                                  "train.log_every",
                                                  "train.collective_timeout_s",
                                                  "data.val",
                                                  "optim.lr",
                                                  "optim.min_lr",
                                                  "optim.grad_clip",
                                                  "parallel"};  // how the state is spread, not what it is
  return fields;
}

const std::vector<std::string>& outcome_neutral_fields() {
  static const std::vector<std::string> fields = {"train.eval_every",
                                                  "train.eval_max_batches",  // periodic evaluations only
                                                  "train.checkpoint_every",
                                                  "train.keep_checkpoints",
                                                  "train.async_checkpoint",
                                                  "train.activation_checkpointing",
                                                  "train.attention_l0",
                                                  "train.log_every",
                                                  "train.collective_timeout_s",
                                                  "train.device",
                                                  "parallel"};
  return fields;
}

namespace {

void collect(const nlohmann::json& a, const nlohmann::json& b, const std::string& path, std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      const std::string sub = path.empty() ? it.key() : path + "." + it.key();
      if (!b.contains(it.key()))
        out.push_back(sub);
      else
        collect(it.value(), b.at(it.key()), sub, out);
    }
    for (auto it = b.begin(); it != b.end(); ++it)
      if (!a.contains(it.key())) out.push_back(path.empty() ? it.key() : path + "." + it.key());
    return;
  }
  if (a != b) out.push_back(path);
}

bool covered(const std::string& path, const std::vector<std::string>& fields) {
  for (const auto& f : fields)
    if (path == f || path.rfind(f + ".", 0) == 0) return true;
  return false;
}

std::string value_at(const nlohmann::json& doc, const std::string& path) {
  const nlohmann::json* node = &doc;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(key)) return "(absent)";
    node = &node->at(key);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return node->dump();
}

}  // namespace

std::vector<std::string> differing_fields(const nlohmann::json& a, const nlohmann::json& b) {
  std::vector<std::string> out;
  collect(a, b, "", out);
  return out;
}

std::vector<std::string> describe_differences(const nlohmann::json& a, const nlohmann::json& b,
                                              const std::vector<std::string>& allowed, const std::string& name_a,
                                              const std::string& name_b) {
  std::vector<std::string> out;
  for (const auto& path : differing_fields(a, b))
    if (!covered(path, allowed))
      out.push_back(path + ": " + name_a + " " + value_at(a, path) + ", " + name_b + " " + value_at(b, path));
  return out;
}

void check_resume_config(const nlohmann::json& saved, const nlohmann::json& now, const std::string& checkpoint) {
  std::string refused;
  for (const auto& d : describe_differences(saved, now, resumable_fields(), "checkpoint", "now")) refused += "\n  " + d;
  MODA_CHECK(refused.empty(), "cannot resume from ", checkpoint,
             ": the config differs in fields that define the model, the data order or the optimiser state:", refused,
             "\nstart a new run folder, or change only fields that may differ on resume (docs/training.md)");
}

}  // namespace moda
