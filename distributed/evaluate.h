#pragma once
// Validation loss and perplexity per named set, over whole sets in a fixed order (deterministic),
// and their token-weighted average.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/device.h"
#include "distributed/comm/communicator.h"

namespace moda {
namespace nn {
class LanguageModel;
}

struct SetLoss {
  double loss = 0;     // mean cross-entropy (nats per token)
  int64_t tokens = 0;  // tokens predicted
  double ppl() const;
};

struct EvalReport {
  std::map<std::string, SetLoss> sets;
  SetLoss average;                 // token-weighted over the sets
  nlohmann::json to_json() const;  // {"sets": {name: {loss, ppl, tokens}}, "average": {...}}
  std::string table() const;       // aligned text table
};

// Reads the first batch of every set: a missing, malformed or empty set fails here, naming the set,
// before any training, instead of at the first evaluation.
void check_eval_sets(const std::map<std::string, std::vector<std::string>>& sets, int64_t seq_len, int64_t batch,
                     int64_t vocab_size);

// `max_batches` > 0 caps each set (used for quick evaluations during training); 0 = whole sets.
// With a communicator of N ranks, each rank evaluates every N-th window and the sums are
// all-reduced: every rank returns the same report.
EvalReport evaluate(nn::LanguageModel& model, const std::map<std::string, std::vector<std::string>>& sets,
                    int64_t seq_len, int64_t batch, int64_t max_batches, Device device, Communicator* comm = nullptr);

}  // namespace moda
