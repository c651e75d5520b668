#pragma once
// One checkpoint write off the training thread (train.async_checkpoint, docs/reliability.md,
// "Checkpoint writes overlap training"). The work writes files from a host snapshot and returns a
// JSON record (a manifest, or a shard file's size and hash); it must touch no state the training
// thread uses and run no collective: collectives stay on the training thread (MPI_THREAD_FUNNELED).
// An exception the work throws is kept and rethrown by join() on the caller's thread, so errors
// such as a full disk reach the user with the same message as a synchronous save.
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

namespace moda {

class BackgroundWrite {
 public:
  // Starts `work` on a new thread (background) or runs it now, on this thread.
  BackgroundWrite(std::function<nlohmann::json()> work, bool background) : work_(std::move(work)) {
    if (background)
      thread_ = std::thread([this] { run(); });
    else
      run();
  }
  ~BackgroundWrite() {
    if (thread_.joinable()) thread_.join();
  }
  BackgroundWrite(const BackgroundWrite&) = delete;
  BackgroundWrite& operator=(const BackgroundWrite&) = delete;

  // True once the work has returned or thrown; never blocks.
  bool finished() const { return finished_.load(std::memory_order_acquire); }

  // Waits for the work; returns its result or rethrows its exception. Call once.
  nlohmann::json join() {
    if (thread_.joinable()) thread_.join();
    work_ = nullptr;  // frees the snapshot the work captured
    if (error_) std::rethrow_exception(error_);
    return std::move(result_);
  }

  double seconds() const { return seconds_; }  // how long the work ran (valid once finished)

 private:
  void run() {
    const auto start = std::chrono::steady_clock::now();
    try {
      result_ = work_();
    } catch (...) {
      error_ = std::current_exception();
    }
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    finished_.store(true, std::memory_order_release);
  }

  std::function<nlohmann::json()> work_;
  nlohmann::json result_;
  std::exception_ptr error_;
  double seconds_ = 0;
  std::atomic<bool> finished_{false};
  std::thread thread_;  // last: started after every other member is constructed
};

}  // namespace moda
