#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace moda {

// F64 exists for the CPU reference and gradient checks (finite differences in float64).
enum class DType : uint8_t { F32, BF16, I32, I64, U16, F64 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);                 // "f32", "bf16", ...
DType dtype_from_name(const std::string& name);  // throws naming the value and the choices
bool is_floating(DType t);

}  // namespace moda
