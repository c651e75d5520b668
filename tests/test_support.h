#pragma once
// Small helpers shared by the cpu tests: a scratch folder that cleans up after itself, and the
// message of the moda::Error a call throws.
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"

namespace moda::testing {

// <tmp>/moda_<name>_<pid>, emptied on construction and removed on destruction.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name = "test")
      : path(std::filesystem::temp_directory_path() / ("moda_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

// The message of the moda::Error `f` throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const moda::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace moda::testing
