#pragma once
// Errors are exceptions carrying text a user can act on. This header stays free of fmt/spdlog so
// that .cu files (nvcc 13 rejects fmt's consteval format strings) can include it.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace moda {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Thrown when a device allocation fails; the text states request, bytes in use and peak.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}
}  // namespace detail

}  // namespace moda

// MODA_CHECK(cond, parts...) throws moda::Error built from the streamed parts when cond is false.
#define MODA_CHECK(cond, ...)                                              \
  do {                                                                     \
    if (!(cond)) throw ::moda::Error(::moda::detail::concat(__VA_ARGS__)); \
  } while (0)

#define MODA_FAIL(...) throw ::moda::Error(::moda::detail::concat(__VA_ARGS__))
