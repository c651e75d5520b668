#pragma once
// Memory for tensors: 64-byte aligned host memory, pinned host buffers and a stream-ordered caching
// allocator for CUDA. cudaMalloc/cudaFree synchronise the device, so freed device blocks are kept
// in a per-device cache and handed out again to requests on the same stream (reuse on the stream
// that freed them needs no extra synchronisation because work on one stream is ordered).
#include <cstddef>
#include <cstdint>

#include "core/stream.h"

namespace moda {

void* host_allocate(size_t bytes);  // 64-byte aligned, throws OutOfMemoryError
void host_free(void* p);

struct AllocatorStats {
  size_t allocated = 0;       // bytes held by live tensors
  size_t reserved = 0;        // bytes obtained from cudaMalloc (live + cached)
  size_t peak_allocated = 0;  // maximum of `allocated` since start or reset_peak
  size_t peak_reserved = 0;   // maximum of `reserved` since start or reset_peak
  size_t allocations = 0;     // allocate() calls
  size_t cache_hits = 0;      // allocate() calls served from the cache
};

namespace cuda_allocator {
// Rounds the request up (512 B granules below 1 MiB, 2 MiB granules above) and reuses a cached block
// of this stream when one fits. On cudaMalloc failure it releases the cache and retries once, then
// throws OutOfMemoryError stating the request, the bytes in use and the peak.
void* allocate(size_t bytes, int device, cudaStream_t stream);
void free(void* ptr);  // returns the block to its device's cache
AllocatorStats stats(int device);
void release_cached(int device);  // cudaFree every cached block
void reset_peak(int device);
}  // namespace cuda_allocator

// Page-locked host memory for device<->host copies at full bus speed (cudaMallocHost). Where no
// CUDA driver answers (CPU-only build or machine) it is ordinary host memory and `pinned` is false.
void* pinned_host_allocate(size_t bytes, bool& pinned);
void pinned_host_free(void* p, bool pinned);

}  // namespace moda
