#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace moda {

struct Device {
  enum class Kind : uint8_t { CPU, CUDA };
  Kind kind = Kind::CPU;
  int index = 0;

  static Device cpu() { return {Kind::CPU, 0}; }
  static Device cuda(int i = 0) { return {Kind::CUDA, i}; }
  bool is_cpu() const { return kind == Kind::CPU; }
  bool is_cuda() const { return kind == Kind::CUDA; }
  bool operator==(const Device& o) const { return kind == o.kind && (is_cpu() || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;                  // "cpu", "cuda:0"
  static Device parse(const std::string&);  // inverse of str(); "cuda" means cuda:0
};

// Number of visible CUDA devices; 0 when built without CUDA or when no driver/device is present.
int cuda_device_count();
bool cuda_available();
// Makes `index` the calling thread's current CUDA device (kernels launch there); no-op without CUDA.
void set_cuda_device(int index);
// Bytes in use on the device as the driver reports them (total - free: every process, the CUDA
// context and memory outside moda's allocator included); 0 without CUDA.
size_t cuda_device_memory_used(int device);

}  // namespace moda
