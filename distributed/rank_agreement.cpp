#include "distributed/rank_agreement.h"

#include <string>
#include <vector>

#include "core/error.h"
#include "distributed/resume_check.h"

namespace moda {

const char* program_version() { return "moda 0.4 (" __DATE__ " " __TIME__ ")"; }

namespace {

// Rank 0's text on every rank (length first, then the bytes as i32 codes: MPI moves no bytes type here).
std::string broadcast_text(Communicator& comm, const std::string& mine) {
  Tensor length = Tensor::full({1}, static_cast<double>(mine.size()), DType::I64);
  comm.broadcast(length, 0);
  const int64_t n = length.data<int64_t>()[0];
  Tensor codes = Tensor::empty({std::max<int64_t>(n, 1)}, DType::I32);
  if (comm.rank() == 0)
    for (int64_t i = 0; i < n; ++i) codes.data<int32_t>()[i] = static_cast<unsigned char>(mine[size_t(i)]);
  comm.broadcast(codes, 0);
  std::string out(size_t(n), '\0');
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = static_cast<char>(codes.data<int32_t>()[i]);
  return out;
}

}  // namespace

void check_same_config_on_every_rank(Communicator& comm, const nlohmann::json& resolved) {
  if (comm.world_size() == 1) return;
  const nlohmann::json mine = {{"version", program_version()}, {"config", resolved}};
  const nlohmann::json root = nlohmann::json::parse(broadcast_text(comm, mine.dump()));
  const std::vector<std::string> fields = differing_fields(root, mine);
  Tensor flags = Tensor::zeros({comm.world_size()}, DType::I32);
  Tensor flag = Tensor::full({1}, fields.empty() ? 0.0 : 1.0, DType::I32);
  comm.all_gather(flags, flag);
  std::string ranks;
  for (int r = 0; r < comm.world_size(); ++r)
    if (flags.data<int32_t>()[r]) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  if (ranks.empty()) return;
  std::string detail;
  for (const auto& f : fields) detail += (detail.empty() ? "" : ", ") + f;
  MODA_FAIL(
      "ranks ", ranks, " run a config or program version that differs from rank 0's",
      detail.empty() ? std::string() : " (this rank " + std::to_string(comm.rank()) + " differs in: " + detail + ")",
      "; every rank must run the same build with the same config and --set values");
}

}  // namespace moda
