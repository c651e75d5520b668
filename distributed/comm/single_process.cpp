#include "core/error.h"
#include "distributed/comm/communicator.h"

namespace moda {
namespace {

void check_sizes(const char* op, const Tensor& out, const Tensor& in) {
  MODA_CHECK(out.is_contiguous(), op, ": out must be contiguous, got ", out.describe());
  MODA_CHECK(out.numel() == in.numel(), op, ": a world of one needs out and in of equal size, got ", out.describe(),
             " and ", in.describe());
}

class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void all_reduce_sum(Tensor&) override {}
  void all_gather(Tensor& out, const Tensor& in) override {
    check_sizes("all_gather", out, in);
    out.view({-1}).copy_(in.reshape({-1}));
  }
  void reduce_scatter_sum(Tensor& out, const Tensor& in) override {
    check_sizes("reduce_scatter_sum", out, in);
    out.view({-1}).copy_(in.reshape({-1}));
  }
  void broadcast(Tensor&, int root) override {
    MODA_CHECK(root == 0, "broadcast: root ", root, " outside a world of one");
  }
  void barrier() override {}
};

}  // namespace

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcessCommunicator>();
}

}  // namespace moda
