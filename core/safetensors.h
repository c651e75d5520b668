#pragma once
// safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}} padded
// with spaces to a multiple of 8 bytes, then the raw little-endian tensor bytes.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace moda {

// The safetensors format caps the JSON header at 100 MB; a larger length is a corrupt file.
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Writes atomically (temporary file + rename). Tensors may live on any device and have any layout.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;  // CPU, contiguous
  std::map<std::string, std::string> metadata;
};

// Errors name the file and what is wrong (truncated header, bad JSON, offsets outside the file...);
// every size read from the file is checked against the file before memory is allocated.
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace moda
