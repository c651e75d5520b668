#include "distributed/comm/mpi_communicator.h"

#include <mpi.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/error.h"

namespace moda {
namespace {

// What a fault report names: the collective this rank is in and the training step. There is one
// MPI world per process and the MPI error handler gets no pointer of ours, hence process-wide.
struct FaultContext {
  const char* collective = nullptr;  // null: not inside a collective
  int64_t step = -1;                 // -1: before the first training step
};
FaultContext g_fault;

std::string step_text() {
  return g_fault.step >= 0 ? "at step " + std::to_string(g_fault.step) : "before the first training step";
}

std::string fault_place() {
  return (g_fault.collective ? std::string("in ") + g_fault.collective : "outside a collective") + " " + step_text();
}

std::string rank_of_world() {
  int rank = -1, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return "rank " + std::to_string(rank) + " of " + std::to_string(size);
}

// MPI's error handler on MPI_COMM_WORLD: a failed MPI call (a peer's connection lost, a bad
// argument) is reported naming the collective and step, then every rank is ended. Returning an
// error code instead would leave the other ranks waiting in their next collective.
void on_mpi_error(MPI_Comm*, int* code, ...) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(*code, text, &len) != MPI_SUCCESS) len = 0;
  spdlog::error("{}: MPI error {}: {}; aborting every rank", rank_of_world(), fault_place(), std::string(text, len));
  spdlog::default_logger()->flush();
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return
}

}  // namespace

MpiSession::MpiSession() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  MODA_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS,
             "MPI_Init_thread failed");
  MPI_Errhandler handler;
  MPI_Comm_create_errhandler(on_mpi_error, &handler);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, handler);
  MPI_Errhandler_free(&handler);  // MPI_COMM_WORLD keeps it
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

namespace {

MPI_Datatype mpi_type(const char* op, const Tensor& t) {
  MODA_CHECK(t.device().is_cpu(), op, ": the MPI communicator moves CPU tensors, got ", t.describe(),
             " (CUDA tensors go through NCCL)");
  MODA_CHECK(t.is_contiguous(), op, ": MPI collectives need contiguous tensors, got ", t.describe());
  switch (t.dtype()) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    default: MODA_FAIL(op, ": the MPI communicator reduces f32, f64, i32 and i64, got ", t.describe());
  }
}

int count_of(const char* op, const Tensor& t) {
  MODA_CHECK(t.numel() <= INT32_MAX, op, ": ", t.describe(), " exceeds MPI's int count");
  return static_cast<int>(t.numel());
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Every collective is started in its non-blocking form and polled (MPI_Test) until it completes
// or train.collective_timeout_s passes: a blocking MPI call has no timeout, so a dead or stopped
// peer would hang this rank for ever.
class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    local_rank_ = mpi_local_rank();  // a collective: every rank builds its communicator at start
  }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string backend() const override { return "mpi"; }
  void set_timeout(double seconds) override {
    MODA_CHECK(seconds > 0, "collective timeout: ", seconds, " s must be > 0");
    timeout_s_ = seconds;
  }
  void set_step(int64_t step) override { g_fault.step = step; }

  void all_reduce_sum(Tensor& t) override {
    const char* op = "all_reduce_sum";
    MPI_Request r;
    g_fault.collective = op;
    MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), count_of(op, t), mpi_type(op, t), MPI_SUM, MPI_COMM_WORLD, &r);
    wait(r, op);
  }
  void all_gather(Tensor& out, const Tensor& in) override {
    const char* op = "all_gather";
    MODA_CHECK(out.numel() == in.numel() * size_ && out.dtype() == in.dtype(), op, ": out ", out.describe(),
               " must hold world_size x in ", in.describe());
    MPI_Request r;
    g_fault.collective = op;
    MPI_Iallgather(in.data_ptr(), count_of(op, in), mpi_type(op, in), out.data_ptr(), count_of(op, in),
                   mpi_type(op, out), MPI_COMM_WORLD, &r);
    wait(r, op);
  }
  void reduce_scatter_sum(Tensor& out, const Tensor& in) override {
    const char* op = "reduce_scatter_sum";
    MODA_CHECK(in.numel() == out.numel() * size_ && out.dtype() == in.dtype(), op, ": in ", in.describe(),
               " must hold world_size x out ", out.describe());
    MPI_Request r;
    g_fault.collective = op;
    MPI_Ireduce_scatter_block(in.data_ptr(), out.data_ptr(), count_of(op, out), mpi_type(op, in), MPI_SUM,
                              MPI_COMM_WORLD, &r);
    wait(r, op);
  }
  void broadcast(Tensor& t, int root) override {
    const char* op = "broadcast";
    MPI_Request r;
    g_fault.collective = op;
    MPI_Ibcast(t.data_ptr(), count_of(op, t), mpi_type(op, t), root, MPI_COMM_WORLD, &r);
    wait(r, op);
  }
  void barrier() override {
    MPI_Request r;
    g_fault.collective = "barrier";
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    wait(r, "barrier");
  }

 private:
  // Polls until `request` completes. The first polls do not sleep (most collectives of a step
  // finish within microseconds); then naps double up to 1 ms, so a rank that waits for a slower
  // one does not spin a core an oversubscribed peer needs, and the deadline is checked often.
  void wait(MPI_Request& request, const char* op) {
    const auto start = std::chrono::steady_clock::now();
    std::chrono::microseconds nap{1};
    for (int polls = 0, done = 0;; ++polls) {
      MPI_Test(&request, &done, MPI_STATUS_IGNORE);  // errors go to on_mpi_error
      if (done) break;
      if (polls < kPollsBeforeNap) continue;
      const double waited = seconds_since(start);
      if (waited > timeout_s_) timed_out(op, waited);
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::microseconds{1000});
    }
    g_fault.collective = nullptr;
  }

  [[noreturn]] void timed_out(const char* op, double waited) const {
    spdlog::error(
        "rank {} of {}: collective {} timed out after {:.1f} s {} (train.collective_timeout_s = {}): another rank "
        "died, hangs or called a different collective; aborting every rank",
        rank_, size_, op, waited, step_text(), timeout_s_);
    spdlog::default_logger()->flush();
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::abort();  // MPI_Abort does not return
  }

  static constexpr int kPollsBeforeNap = 100;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  double timeout_s_ = 600;  // train.collective_timeout_s's default, until the trainer sets it
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

int mpi_local_rank() {
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  int rank = 0;
  MPI_Comm_rank(local, &rank);
  MPI_Comm_free(&local);
  return rank;
}

}  // namespace moda
