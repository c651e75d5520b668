#include "distributed/comm/nccl_watchdog.h"

#include <cuda_runtime_api.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "core/error.h"

namespace moda {

NcclWatchdog::NcclWatchdog(ncclComm_t comm, int device, int rank, int world)
    : comm_(comm), device_(device), rank_(rank), world_(world), thread_([this] { run(); }) {}

NcclWatchdog::~NcclWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  for (auto& e : pending_) cudaEventDestroy(e.done);
}

void NcclWatchdog::watch(const char* op, cudaStream_t stream) {
  Entry e{nullptr, op, step_.load(), std::chrono::steady_clock::now()};
  MODA_CHECK(cudaEventCreateWithFlags(&e.done, cudaEventDisableTiming) == cudaSuccess,
             "NCCL watchdog: cudaEventCreate");
  MODA_CHECK(cudaEventRecord(e.done, stream) == cudaSuccess, "NCCL watchdog: cudaEventRecord after ", op);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(e);
  }
  wake_.notify_all();
}

void NcclWatchdog::run() {
  cudaSetDevice(device_);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, std::chrono::milliseconds(100));
    // Completed collectives leave in order (one communication stream runs them in order).
    while (!pending_.empty() && cudaEventQuery(pending_.front().done) == cudaSuccess) {
      cudaEventDestroy(pending_.front().done);
      pending_.pop_front();
    }
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm_, &async);
    if (async != ncclSuccess && async != ncclInProgress)
      fail(ncclGetErrorString(async), pending_.empty() ? nullptr : &pending_.front(), 0);
    if (pending_.empty()) continue;
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - pending_.front().queued).count();
    if (waited > timeout_s_.load()) fail("timed out", &pending_.front(), waited);
  }
}

void NcclWatchdog::fail(const char* what, const Entry* entry, double waited) {
  if (entry)
    spdlog::error(
        "rank {} of {}: NCCL collective {} queued at step {} {} after {:.1f} s (train.collective_timeout_s = {}): "
        "another rank died, hangs or called a different collective; aborting the communicator and this rank",
        rank_, world_, entry->op, entry->step, what, waited, timeout_s_.load());
  else
    spdlog::error("rank {} of {}: NCCL reported an asynchronous error at step {}: {}; aborting", rank_, world_,
                  step_.load(), what);
  spdlog::default_logger()->flush();
  ncclCommAbort(comm_);  // frees the kernels waiting on this rank
  std::_Exit(1);         // mpirun sees a rank exit non-zero and ends the others
}

}  // namespace moda
