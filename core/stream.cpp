#include "core/stream.h"

#include "core/error.h"

#ifdef MODA_HAVE_CUDA
#include "core/cuda_check.h"
#endif

namespace moda {

static thread_local cudaStream_t g_current_stream = nullptr;

cudaStream_t current_stream() { return g_current_stream; }
void set_current_stream(cudaStream_t s) { g_current_stream = s; }

#ifdef MODA_HAVE_CUDA
void synchronize_device() { MODA_CUDA_CHECK(cudaDeviceSynchronize(), "synchronize"); }
Stream::Stream() { MODA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "Stream"); }
Stream::~Stream() { cudaStreamDestroy(stream_); }
void Stream::synchronize() const { MODA_CUDA_CHECK(cudaStreamSynchronize(stream_), "Stream::synchronize"); }
Event::Event(bool timing) {
  MODA_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming), "Event");
}
Event::~Event() { cudaEventDestroy(event_); }
void Event::record(cudaStream_t s) { MODA_CUDA_CHECK(cudaEventRecord(event_, s), "Event::record"); }
void Event::wait_on(cudaStream_t s) const { MODA_CUDA_CHECK(cudaStreamWaitEvent(s, event_, 0), "Event::wait_on"); }
void Event::synchronize() const { MODA_CUDA_CHECK(cudaEventSynchronize(event_), "Event::synchronize"); }
float Event::elapsed_ms_since(const Event& start) const {
  float ms = 0;
  MODA_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_), "Event::elapsed_ms_since");
  return ms;
}
#else
void synchronize_device() {}
Stream::Stream() { MODA_FAIL("Stream: moda was built without CUDA"); }
Stream::~Stream() {}
void Stream::synchronize() const {}
Event::Event(bool) { MODA_FAIL("Event: moda was built without CUDA"); }
Event::~Event() {}
void Event::record(cudaStream_t) {}
void Event::wait_on(cudaStream_t) const {}
void Event::synchronize() const {}
float Event::elapsed_ms_since(const Event&) const { return 0; }
#endif

}  // namespace moda
