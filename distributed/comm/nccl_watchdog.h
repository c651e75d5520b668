#pragma once
// A watchdog for NCCL collectives (docs/distributed.md, "Faults"). NCCL kernels wait on the GPU
// for their peers; a peer that died or hangs leaves them spinning and the host blocked at its
// next synchronisation, for ever. Every queued collective is registered here with an event
// recorded after it; a thread polls the oldest one and ncclCommGetAsyncError. When a collective
// is not done `timeout` seconds after it was queued, or NCCL reports an asynchronous error, the
// rank logs which collective at which step, aborts the communicator (ncclCommAbort, which frees
// the peers' kernels too) and exits 1: mpirun then ends every rank.
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "core/stream.h"

namespace moda {

class NcclWatchdog {
 public:
  NcclWatchdog(ncclComm_t comm, int device, int rank, int world);
  ~NcclWatchdog();  // stops the thread; the caller destroys the communicator afterwards
  NcclWatchdog(const NcclWatchdog&) = delete;
  NcclWatchdog& operator=(const NcclWatchdog&) = delete;

  void set_timeout(double seconds) { timeout_s_ = seconds; }
  void set_step(int64_t step) { step_ = step; }
  // After queueing collective `op` on `stream`.
  void watch(const char* op, cudaStream_t stream);

 private:
  struct Entry {
    cudaEvent_t done;
    const char* op;
    int64_t step;
    std::chrono::steady_clock::time_point queued;
  };
  void run();
  [[noreturn]] void fail(const char* what, const Entry* entry, double waited);

  ncclComm_t comm_;
  int device_, rank_, world_;
  std::atomic<double> timeout_s_{600};
  std::atomic<int64_t> step_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Entry> pending_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace moda
