#include "distributed/comm/mpi_communicator.h"

#include <mpi.h>

#include <cstdlib>

#include "core/error.h"

namespace moda {

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(var)) return true;
  return false;
}

MpiSession::MpiSession() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  MODA_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS,
             "MPI_Init_thread failed");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
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

  void all_reduce_sum(Tensor& t) override {
    MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), count_of("all_reduce_sum", t), mpi_type("all_reduce_sum", t), MPI_SUM,
                  MPI_COMM_WORLD);
  }
  void all_gather(Tensor& out, const Tensor& in) override {
    const char* op = "all_gather";
    MODA_CHECK(out.numel() == in.numel() * size_ && out.dtype() == in.dtype(), op, ": out ", out.describe(),
               " must hold world_size x in ", in.describe());
    MPI_Allgather(in.data_ptr(), count_of(op, in), mpi_type(op, in), out.data_ptr(), count_of(op, in),
                  mpi_type(op, out), MPI_COMM_WORLD);
  }
  void reduce_scatter_sum(Tensor& out, const Tensor& in) override {
    const char* op = "reduce_scatter_sum";
    MODA_CHECK(in.numel() == out.numel() * size_ && out.dtype() == in.dtype(), op, ": in ", in.describe(),
               " must hold world_size x out ", out.describe());
    MPI_Reduce_scatter_block(in.data_ptr(), out.data_ptr(), count_of(op, out), mpi_type(op, in), MPI_SUM,
                             MPI_COMM_WORLD);
  }
  void broadcast(Tensor& t, int root) override {
    MPI_Bcast(t.data_ptr(), count_of("broadcast", t), mpi_type("broadcast", t), root, MPI_COMM_WORLD);
  }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0;
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
