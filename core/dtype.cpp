#include "core/dtype.h"

#include "core/error.h"

namespace moda {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U16: return 2;
    case DType::F64: return 8;
  }
  MODA_FAIL("unknown dtype code ", static_cast<int>(t));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U16: return "u16";
    case DType::F64: return "f64";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType t : {DType::F32, DType::BF16, DType::I32, DType::I64, DType::U16, DType::F64})
    if (name == dtype_name(t)) return t;
  MODA_FAIL("unknown dtype '", name, "'; expected one of f32, bf16, i32, i64, u16, f64");
}

bool is_floating(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F64; }

}  // namespace moda
