#include "core/safetensors.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace moda {

static const char* st_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U16: return "U16";
    case DType::F64: return "F64";
  }
  return "?";
}

static DType from_st_dtype(const std::string& s, const std::string& file, const std::string& name) {
  for (DType t : {DType::F32, DType::BF16, DType::I32, DType::I64, DType::U16, DType::F64})
    if (s == st_dtype(t)) return t;
  MODA_FAIL(file, ": tensor '", name, "' has unsupported dtype '", s, "' (supported: F32, BF16, I32, I64, U16, F64)");
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> host;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    MODA_CHECK(name != "__metadata__", path, ": '__metadata__' is reserved, not a tensor name");
    MODA_CHECK(!header.contains(name), path, ": duplicate tensor name '", name, "'");
    Tensor h = t.to(Device::cpu()).contiguous();
    header[name] = {
        {"dtype", st_dtype(h.dtype())}, {"shape", h.shape()}, {"data_offsets", {offset, offset + h.nbytes()}}};
    offset += h.nbytes();
    host.push_back(h);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  write_file_atomically(path, [&](std::ostream& out) {
    uint64_t n = json.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(json.data(), static_cast<std::streamsize>(json.size()));
    for (const Tensor& h : host)
      out.write(static_cast<const char*>(h.data_ptr()), static_cast<std::streamsize>(h.nbytes()));
  });
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MODA_CHECK(in, "cannot open safetensors file '", path, "'");
  in.seekg(0, std::ios::end);
  uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  MODA_CHECK(file_size >= 8, path, ": file of ", file_size, " bytes is too short for a safetensors header");
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  MODA_CHECK(n <= file_size - 8, path, ": header length ", n, " exceeds the file (", file_size, " bytes): truncated?");
  std::string json(n, '\0');
  in.read(json.data(), static_cast<std::streamsize>(n));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(json);
  } catch (const std::exception& e) {
    MODA_FAIL(path, ": header is not valid JSON: ", e.what());
  }
  MODA_CHECK(header.is_object(), path, ": header must be a JSON object");
  uint64_t data_start = 8 + n, data_size = file_size - data_start;
  SafetensorsFile out;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      for (auto& [k, v] : entry.items()) out.metadata[k] = v.get<std::string>();
      continue;
    }
    try {
      DType dtype = from_st_dtype(entry.at("dtype").get<std::string>(), path, name);
      Shape shape = entry.at("shape").get<Shape>();
      auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
      MODA_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1] && offsets[1] <= data_size, path, ": tensor '", name,
                 "' data_offsets [", offsets.at(0), ", ", offsets.at(1), "] lie outside the ", data_size,
                 "-byte data section (truncated file?)");
      Tensor t = Tensor::empty(shape, dtype, Device::cpu());
      MODA_CHECK(offsets[1] - offsets[0] == t.nbytes(), path, ": tensor '", name, "' has ", offsets[1] - offsets[0],
                 " bytes, but dtype and shape ", shape_str(shape), " need ", t.nbytes());
      in.seekg(static_cast<std::streamoff>(data_start + offsets[0]));
      in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
      MODA_CHECK(in.good(), path, ": reading tensor '", name, "' failed");
      out.tensors.emplace(name, t);
    } catch (const nlohmann::json::exception& e) {
      MODA_FAIL(path, ": tensor '", name, "': malformed header entry: ", e.what());
    }
  }
  return out;
}

}  // namespace moda
