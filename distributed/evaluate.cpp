#include "distributed/evaluate.h"

#include <cmath>
#include <cstdio>

#include "autograd/graph.h"
#include "core/error.h"
#include "data/loader.h"
#include "nn/language_model.h"

namespace moda {

double SetLoss::ppl() const { return std::exp(loss); }

nlohmann::json EvalReport::to_json() const {
  auto one = [](const SetLoss& s) { return nlohmann::json{{"loss", s.loss}, {"ppl", s.ppl()}, {"tokens", s.tokens}}; };
  nlohmann::json out = {{"sets", nlohmann::json::object()}, {"average", one(average)}};
  for (const auto& [name, s] : sets) out["sets"][name] = one(s);
  return out;
}

std::string EvalReport::table() const {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-20s %10s %12s %12s\n", "set", "loss", "perplexity", "tokens");
  out += line;
  auto row = [&](const std::string& name, const SetLoss& s) {
    std::snprintf(line, sizeof line, "%-20s %10.4f %12.3f %12lld\n", name.c_str(), s.loss, s.ppl(),
                  static_cast<long long>(s.tokens));
    out += line;
  };
  for (const auto& [name, s] : sets) row(name, s);
  row("average", average);
  return out;
}

void check_eval_sets(const std::map<std::string, std::vector<std::string>>& sets, int64_t seq_len, int64_t batch,
                     int64_t vocab_size) {
  for (const auto& [name, shards] : sets) {
    data::LoaderOptions opts;
    opts.shards = shards;
    opts.batch_size = batch;
    opts.seq_len = seq_len;
    opts.vocab_size = static_cast<size_t>(vocab_size);
    try {
      data::EvalLoader loader(opts);
      std::vector<int32_t> inputs(static_cast<size_t>(batch * seq_len)), targets(inputs.size());
      int64_t count = 0;
      const bool any = loader.next(inputs.data(), targets.data(), &count);
      MODA_CHECK(any && count > 0, "it has no tokens to predict (its shards hold fewer than 2 tokens)");
    } catch (const std::exception& e) {
      MODA_FAIL("data.val: validation set '", name, "' cannot be evaluated: ", e.what());
    }
  }
}

EvalReport evaluate(nn::LanguageModel& model, const std::map<std::string, std::vector<std::string>>& sets,
                    int64_t seq_len, int64_t batch, int64_t max_batches, Device device, Communicator* comm) {
  NoGradGuard no_grad;
  EvalReport report;
  double total_loss = 0;
  int64_t total_tokens = 0;
  for (const auto& [name, shards] : sets) {
    data::LoaderOptions opts;
    opts.shards = shards;
    opts.batch_size = batch;
    opts.seq_len = seq_len;
    opts.vocab_size = static_cast<size_t>(model.config().vocab_size);
    if (comm) opts.rank = comm->rank(), opts.world_size = comm->world_size();
    data::EvalLoader loader(opts);
    double set_loss = 0;
    int64_t set_tokens = 0, batches = 0, count = 0;
    Tensor inputs = Tensor::empty({batch, seq_len}, DType::I32), targets = Tensor::empty({batch, seq_len}, DType::I32);
    while (loader.next(inputs.data<int32_t>(), targets.data<int32_t>(), &count)) {
      if (max_batches > 0 && batches++ >= max_batches) break;
      if (count == 0) continue;
      Tensor ids = inputs.to(device), tgt = targets.to(device);
      double mean = model.forward(ids, tgt).item();
      set_loss += mean * static_cast<double>(count);
      set_tokens += count;
    }
    if (comm && comm->world_size() > 1) {  // every rank saw the same number of batches
      Tensor sums = Tensor::from_vector(std::vector<double>{set_loss, static_cast<double>(set_tokens)}, {2});
      comm->all_reduce_sum(sums);
      set_loss = sums.data<double>()[0];
      set_tokens = static_cast<int64_t>(sums.data<double>()[1]);
    }
    MODA_CHECK(set_tokens > 0, "evaluation set '", name, "' has no tokens to predict (shards shorter than 2 tokens?)");
    report.sets[name] = {set_loss / static_cast<double>(set_tokens), set_tokens};
    total_loss += set_loss;
    total_tokens += set_tokens;
  }
  if (total_tokens > 0) report.average = {total_loss / static_cast<double>(total_tokens), total_tokens};
  return report;
}

}  // namespace moda
