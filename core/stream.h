#pragma once
// CUDA streams and events without requiring CUDA headers in code that includes this (the typedefs
// below are the ones cuda_runtime_api.h declares, so both can be included together).
#include <cstddef>

struct CUstream_st;
struct CUevent_st;
typedef CUstream_st* cudaStream_t;
typedef CUevent_st* cudaEvent_t;

namespace moda {

// The stream that ops launch on for the calling thread (default: the legacy default stream 0).
cudaStream_t current_stream();
void set_current_stream(cudaStream_t s);
void synchronize_device();  // cudaDeviceSynchronize; no-op without CUDA

// Owns a non-blocking CUDA stream.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
};

// Owns a CUDA event, for ordering streams and timing.
class Event {
 public:
  explicit Event(bool timing = true);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t s);
  void wait_on(cudaStream_t s) const;  // makes stream s wait for this event
  void synchronize() const;
  float elapsed_ms_since(const Event& start) const;

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace moda
