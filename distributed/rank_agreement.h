#pragma once
// Ranks that disagree about the run must not train: at start every rank compares its resolved
// config and the program version with rank 0's, and a mismatch stops every rank with a message
// naming the ranks and, on each differing rank, the fields.
#include <nlohmann/json.hpp>

#include "distributed/comm/communicator.h"

namespace moda {

// The program version compared across ranks (and recorded in checkpoints later).
const char* program_version();

void check_same_config_on_every_rank(Communicator& comm, const nlohmann::json& resolved);

}  // namespace moda
