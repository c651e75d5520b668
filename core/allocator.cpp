#include "core/allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"

#ifdef MODA_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace moda {

static std::string human_bytes(size_t b) {
  char buf[64];
  if (b >= (size_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / double(1ull << 30));
  else if (b >= (size_t(1) << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / double(1ull << 20));
  else
    std::snprintf(buf, sizeof buf, "%zu B", b);
  return buf;
}

void* host_allocate(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw OutOfMemoryError(detail::concat("out of host memory: requested ", human_bytes(bytes)));
  return p;
}

void host_free(void* p) { std::free(p); }

namespace cuda_allocator {

#ifdef MODA_HAVE_CUDA
namespace {

struct Block {
  size_t size;
  int device;
  cudaStream_t stream;
};

struct DeviceCache {
  // Cached (free) blocks by size, so a lookup finds the smallest block that fits.
  std::multimap<size_t, std::pair<void*, cudaStream_t>> free_blocks;
  AllocatorStats stats;
};

struct State {
  std::mutex mutex;
  std::unordered_map<void*, Block> live;
  std::map<int, DeviceCache> devices;
};

State& state() {
  static State* s = new State();  // never destroyed: tensors may be freed during static teardown
  return *s;
}

size_t round_size(size_t bytes) {
  constexpr size_t small_granule = 512, large_granule = 2u << 20, small_limit = 1u << 20;
  if (bytes == 0) bytes = 1;
  size_t g = bytes < small_limit ? small_granule : large_granule;
  return (bytes + g - 1) / g * g;
}

void release_locked(DeviceCache& cache, int device) {
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device);
  for (auto& [size, entry] : cache.free_blocks) {
    cudaFree(entry.first);
    cache.stats.reserved -= size;
  }
  cache.free_blocks.clear();
  cudaSetDevice(previous);
}

}  // namespace

void* allocate(size_t bytes, int device, cudaStream_t stream) {
  size_t size = round_size(bytes);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  DeviceCache& cache = s.devices[device];
  cache.stats.allocations++;
  void* ptr = nullptr;
  // Reuse a cached block from the same stream, at most twice the rounded size, to bound waste.
  for (auto it = cache.free_blocks.lower_bound(size); it != cache.free_blocks.end() && it->first <= 2 * size; ++it) {
    if (it->second.second != stream) continue;
    ptr = it->second.first;
    size = it->first;
    cache.free_blocks.erase(it);
    cache.stats.cache_hits++;
    break;
  }
  if (!ptr) {
    int previous = 0;
    cudaGetDevice(&previous);
    cudaSetDevice(device);
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err != cudaSuccess) {
      cudaGetLastError();
      release_locked(cache, device);
      cudaSetDevice(device);
      err = cudaMalloc(&ptr, size);
    }
    cudaSetDevice(previous);
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw OutOfMemoryError(detail::concat("CUDA out of memory on cuda:", device, ": requested ", human_bytes(bytes),
                                            ", in use ", human_bytes(cache.stats.allocated), ", peak ",
                                            human_bytes(cache.stats.peak_allocated), ", reserved ",
                                            human_bytes(cache.stats.reserved), " (", cudaGetErrorString(err), ")"));
    }
    cache.stats.reserved += size;
    if (cache.stats.reserved > cache.stats.peak_reserved) cache.stats.peak_reserved = cache.stats.reserved;
  }
  s.live[ptr] = Block{size, device, stream};
  cache.stats.allocated += size;
  if (cache.stats.allocated > cache.stats.peak_allocated) cache.stats.peak_allocated = cache.stats.allocated;
  return ptr;
}

void free(void* ptr) {
  if (!ptr) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto it = s.live.find(ptr);
  MODA_CHECK(it != s.live.end(), "cuda_allocator::free: pointer ", ptr, " was not allocated here");
  Block b = it->second;
  s.live.erase(it);
  DeviceCache& cache = s.devices[b.device];
  cache.stats.allocated -= b.size;
  cache.free_blocks.emplace(b.size, std::make_pair(ptr, b.stream));
}

AllocatorStats stats(int device) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.devices[device].stats;
}

void release_cached(int device) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  release_locked(s.devices[device], device);
}

void reset_peak(int device) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto& st = s.devices[device].stats;
  st.peak_allocated = st.allocated;
  st.peak_reserved = st.reserved;
}

#else  // no CUDA in this build: every entry point explains why it cannot work

void* allocate(size_t, int, cudaStream_t) { MODA_FAIL("CUDA allocation requested but moda was built without CUDA"); }
void free(void*) {}
AllocatorStats stats(int) { return {}; }
void release_cached(int) {}
void reset_peak(int) {}

#endif
}  // namespace cuda_allocator

void* pinned_host_allocate(size_t bytes, bool& pinned) {
  pinned = false;
#ifdef MODA_HAVE_CUDA
  void* p = nullptr;
  if (cudaMallocHost(&p, bytes) == cudaSuccess) {
    pinned = true;
    return p;
  }
  cudaGetLastError();  // no driver: clear the error, ordinary memory still works for staging
#endif
  return host_allocate(bytes);
}

void pinned_host_free(void* p, bool pinned) {
#ifdef MODA_HAVE_CUDA
  if (pinned) {
    cudaFreeHost(p);
    return;
  }
#endif
  (void)pinned;
  host_free(p);
}

}  // namespace moda
