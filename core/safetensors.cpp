#include "core/safetensors.h"

#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_config.h"

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

// Bytes of a tensor of `shape` and `dtype`, or an error when a dimension is negative or the
// product overflows; checked before anything is allocated.
static uint64_t checked_nbytes(const Shape& shape, DType dtype, const std::string& file, const std::string& name) {
  uint64_t bytes = dtype_size(dtype);
  for (int64_t d : shape) {
    MODA_CHECK(d >= 0, file, ": tensor '", name, "' has a negative dimension ", d, " in shape ", shape_str(shape));
    MODA_CHECK(d == 0 || bytes <= std::numeric_limits<uint64_t>::max() / uint64_t(d), file, ": tensor '", name,
               "' shape ", shape_str(shape), " overflows a 64-bit byte count");
    bytes *= uint64_t(d);
  }
  return bytes;
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
  MODA_CHECK(n <= kMaxSafetensorsHeaderBytes, path, ": header length ", n, " is over the safetensors limit of ",
             kMaxSafetensorsHeaderBytes, " bytes");
  std::string json(n, '\0');
  in.read(json.data(), static_cast<std::streamsize>(n));
  MODA_CHECK(in.good(), path, ": reading the ", n, "-byte header failed");
  nlohmann::json header = parse_json_text(json, path + ": header");
  MODA_CHECK(header.is_object(), path, ": header must be a JSON object");
  uint64_t data_start = 8 + n, data_size = file_size - data_start;
  SafetensorsFile out;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      MODA_CHECK(entry.is_object(), path, ": __metadata__ must be an object of strings, got ", json_excerpt(entry));
      for (auto& [k, v] : entry.items()) {
        MODA_CHECK(v.is_string(), path, ": __metadata__ field '", k, "' must be a string, got ", json_excerpt(v));
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    MODA_CHECK(entry.is_object(), path, ": tensor '", name, "': expected {dtype, shape, data_offsets}, got ",
               json_excerpt(entry));
    auto field = [&](const char* key) -> const nlohmann::json& {
      MODA_CHECK(entry.contains(key), path, ": tensor '", name, "': missing field '", key, "'");
      return entry.at(key);
    };
    const nlohmann::json& jd = field("dtype");
    MODA_CHECK(jd.is_string(), path, ": tensor '", name, "': dtype must be a string, got ", json_excerpt(jd));
    DType dtype = from_st_dtype(jd.get<std::string>(), path, name);
    const nlohmann::json& js = field("shape");
    MODA_CHECK(js.is_array(), path, ": tensor '", name, "': shape must be a list of integers, got ", json_excerpt(js));
    Shape shape;
    for (const auto& d : js) {
      MODA_CHECK(d.is_number_integer(), path, ": tensor '", name, "': shape must be a list of integers, got ",
                 json_excerpt(js));
      MODA_CHECK(!d.is_number_unsigned() || d.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()), path,
                 ": tensor '", name, "': dimension ", json_excerpt(d), " is too large");
      shape.push_back(d.get<int64_t>());
    }
    const nlohmann::json& jo = field("data_offsets");
    MODA_CHECK(jo.is_array() && jo.size() == 2 && jo[0].is_number_unsigned() && jo[1].is_number_unsigned(), path,
               ": tensor '", name, "': data_offsets must be two non-negative integers, got ", json_excerpt(jo));
    uint64_t begin = jo[0].get<uint64_t>(), end = jo[1].get<uint64_t>();
    MODA_CHECK(begin <= end && end <= data_size, path, ": tensor '", name, "' data_offsets [", begin, ", ", end,
               "] lie outside the ", data_size, "-byte data section (truncated file?)");
    uint64_t need = checked_nbytes(shape, dtype, path, name);
    MODA_CHECK(end - begin == need, path, ": tensor '", name, "' has ", end - begin, " bytes, but dtype and shape ",
               shape_str(shape), " need ", need);
    // Only now, with the size matching bytes that exist in the file, is memory allocated.
    Tensor t = Tensor::empty(shape, dtype, Device::cpu());
    in.seekg(static_cast<std::streamoff>(data_start + begin));
    in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
    MODA_CHECK(in.good(), path, ": reading tensor '", name, "' failed");
    out.tensors.emplace(name, t);
  }
  return out;
}

}  // namespace moda
