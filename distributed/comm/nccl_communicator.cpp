#include "distributed/comm/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/stream.h"
#include "distributed/comm/nccl_watchdog.h"

namespace moda {

namespace {

#define MODA_NCCL_CHECK(call)                                                                                          \
  do {                                                                                                                 \
    const ncclResult_t rc_ = (call);                                                                                   \
    MODA_CHECK(rc_ == ncclSuccess, #call, " failed: ", ncclGetErrorString(rc_), " (", ncclGetLastError(nullptr), ")"); \
  } while (0)

ncclDataType_t nccl_type(const char* op, const Tensor& t) {
  MODA_CHECK(t.is_contiguous(), op, ": NCCL collectives need contiguous tensors, got ", t.describe());
  switch (t.dtype()) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::BF16: return ncclBfloat16;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    default: MODA_FAIL(op, ": NCCL cannot move ", t.describe());
  }
}

// A queued collective: an event at its end on the communication stream, and the tensors it reads
// and writes, kept alive (their memory not reused) until the compute stream is ordered after it.
struct QueuedWork final : Communicator::Work {
  explicit QueuedWork(std::vector<Tensor> tensors) : keep(std::move(tensors)) {}
  void wait() override {
    if (waited) return;
    done.wait_on(current_stream());
    keep.clear();  // freed on the compute stream, which now runs after the collective
    waited = true;
  }
  ~QueuedWork() override { wait(); }
  Event done{false};
  std::vector<Tensor> keep;
  bool waited = false;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> bootstrap, int device)
      : bootstrap_(std::move(bootstrap)), device_(device), before_(false) {
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    if (bootstrap_->rank() == 0) MODA_NCCL_CHECK(ncclGetUniqueId(&id));
    static_assert(sizeof(ncclUniqueId) % sizeof(int64_t) == 0);
    Tensor wire = Tensor::zeros({int64_t(sizeof(id) / sizeof(int64_t))}, DType::I64);
    std::memcpy(wire.data_ptr(), &id, sizeof(id));
    bootstrap_->broadcast(wire, 0);
    std::memcpy(&id, wire.data_ptr(), sizeof(id));
    MODA_NCCL_CHECK(ncclCommInitRank(&comm_, bootstrap_->world_size(), id, bootstrap_->rank()));
    watchdog_ = std::make_unique<NcclWatchdog>(comm_, device_, rank(), world_size());
  }
  ~NcclCommunicator() override {
    watchdog_.reset();  // its thread polls the communicator
    if (comm_) ncclCommDestroy(comm_);
  }

  int rank() const override { return bootstrap_->rank(); }
  int world_size() const override { return bootstrap_->world_size(); }
  int local_rank() const override { return bootstrap_->local_rank(); }
  std::string backend() const override { return "nccl"; }
  // CPU collectives go through the bootstrap communicator, NCCL's through the watchdog.
  void set_timeout(double seconds) override {
    bootstrap_->set_timeout(seconds);
    watchdog_->set_timeout(seconds);
  }
  void set_step(int64_t step) override {
    bootstrap_->set_step(step);
    watchdog_->set_step(step);
  }

  void all_reduce_sum(Tensor& t) override {
    if (t.device().is_cpu()) return bootstrap_->all_reduce_sum(t);
    run("all_reduce", [&](cudaStream_t s) {
      MODA_NCCL_CHECK(
          ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type("all_reduce", t), ncclSum, comm_, s));
    });
  }
  void all_gather(Tensor& out, const Tensor& in) override {
    if (out.device().is_cpu()) return bootstrap_->all_gather(out, in);
    check_pair("all_gather", out, in, in.numel() * world_size(), out.numel());
    run("all_gather", [&](cudaStream_t s) {
      MODA_NCCL_CHECK(
          ncclAllGather(in.data_ptr(), out.data_ptr(), size_t(in.numel()), nccl_type("all_gather", in), comm_, s));
    });
  }
  void reduce_scatter_sum(Tensor& out, const Tensor& in) override {
    if (out.device().is_cpu()) return bootstrap_->reduce_scatter_sum(out, in);
    check_pair("reduce_scatter", out, in, out.numel() * world_size(), in.numel());
    run("reduce_scatter", [&](cudaStream_t s) {
      MODA_NCCL_CHECK(ncclReduceScatter(in.data_ptr(), out.data_ptr(), size_t(out.numel()),
                                        nccl_type("reduce_scatter", in), ncclSum, comm_, s));
    });
  }
  void broadcast(Tensor& t, int root) override {
    if (t.device().is_cpu()) return bootstrap_->broadcast(t, root);
    run("broadcast", [&](cudaStream_t s) {
      MODA_NCCL_CHECK(
          ncclBroadcast(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type("broadcast", t), root, comm_, s));
    });
  }
  bool asynchronous() const override { return true; }
  std::unique_ptr<Work> all_gather_async(Tensor& out, const Tensor& in) override {
    if (out.device().is_cpu()) return Communicator::all_gather_async(out, in);
    check_pair("all_gather", out, in, in.numel() * world_size(), out.numel());
    return start("all_gather",
                 [&](cudaStream_t s) {
                   MODA_NCCL_CHECK(ncclAllGather(in.data_ptr(), out.data_ptr(), size_t(in.numel()),
                                                 nccl_type("all_gather", in), comm_, s));
                 },
                 {out, in});
  }
  std::unique_ptr<Work> reduce_scatter_sum_async(Tensor& out, const Tensor& in) override {
    if (out.device().is_cpu()) return Communicator::reduce_scatter_sum_async(out, in);
    check_pair("reduce_scatter", out, in, out.numel() * world_size(), in.numel());
    return start("reduce_scatter",
                 [&](cudaStream_t s) {
                   MODA_NCCL_CHECK(ncclReduceScatter(in.data_ptr(), out.data_ptr(), size_t(out.numel()),
                                                     nccl_type("reduce_scatter", in), ncclSum, comm_, s));
                 },
                 {out, in});
  }
  void barrier() override {
    synchronize_device();
    bootstrap_->barrier();
  }

 private:
  void check_pair(const char* op, const Tensor& out, const Tensor& in, int64_t expected, int64_t got) const {
    MODA_CHECK(in.device() == out.device() && in.device().index == device_ && in.dtype() == out.dtype(), op, ": in ",
               in.describe(), " and out ", out.describe(), " must share this rank's GPU and dtype");
    MODA_CHECK(expected == got, op, ": ", in.describe(), " and ", out.describe(), " do not fit a world of ",
               world_size());
  }
  // The collective runs on the communication stream, ordered after the compute stream's queued
  // work and before its later work.
  template <typename Enqueue>
  void run(const char* op, Enqueue enqueue) {
    start(op, enqueue)->wait();
  }
  // Queues the collective on the communication stream behind the compute stream's queued work;
  // the returned Work's event marks its end.
  template <typename Enqueue>
  std::unique_ptr<QueuedWork> start(const char* op, Enqueue enqueue, std::vector<Tensor> keep = {}) {
    before_.record(current_stream());
    before_.wait_on(stream_.get());
    enqueue(stream_.get());
    watchdog_->watch(op, stream_.get());
    auto work = std::make_unique<QueuedWork>(std::move(keep));
    work->done.record(stream_.get());
    return work;
  }

  std::unique_ptr<Communicator> bootstrap_;
  int device_;
  ncclComm_t comm_ = nullptr;
  Stream stream_;
  Event before_;
  std::unique_ptr<NcclWatchdog> watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, int device) {
  // First, so that the communicator's stream, events and NCCL's own state live on this GPU.
  MODA_CUDA_CHECK(cudaSetDevice(device), "NCCL communicator");
  return std::make_unique<NcclCommunicator>(std::move(bootstrap), device);
}

}  // namespace moda
