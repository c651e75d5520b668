#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace moda {

static void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;  // best effort for directories on filesystems that refuse it
  ::fsync(fd);
  ::close(fd);
}

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  fs::path target(path);
  // Appended piece by piece: g++ 12 warns falsely (-Wrestrict) on `"." + std::string&&`.
  std::string name = ".";
  name += target.filename().string();
  name += ".tmp." + std::to_string(::getpid());
  std::string tmp = (target.parent_path() / name).string();
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      MODA_CHECK(out, "cannot open '", tmp, "' for writing: ", std::strerror(errno));
      write(out);
      out.flush();
      MODA_CHECK(out.good(), "writing '", tmp, "' failed (disk full?)");
    }
    fsync_path(tmp, false);
    MODA_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '", tmp, "' to '", path,
               "': ", std::strerror(errno));
    fsync_path(target.parent_path().empty() ? "." : target.parent_path().string(), true);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void rename_atomically(const std::string& from, const std::string& to) {
  MODA_CHECK(std::rename(from.c_str(), to.c_str()) == 0, "cannot rename '", from, "' to '", to,
             "': ", std::strerror(errno));
  auto parent = std::filesystem::path(to).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), true);
}

}  // namespace moda
