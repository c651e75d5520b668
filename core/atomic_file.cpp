#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace moda {

// A file's fsync must succeed: on filesystems that allocate late (ext4 delalloc, NFS) a full disk
// shows only here, and a file renamed into place after a failed fsync may be lost. A directory's
// is best effort (some filesystems refuse it).
static void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  const bool ok = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  MODA_CHECK(ok || directory, "cannot flush '", path, "' to disk: ", std::strerror(err));
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
      errno = 0;  // so that a failed write below reports its own cause (ENOSPC, EIO, EROFS)
      write(out);
      out.flush();
      const int err = errno;
      MODA_CHECK(out.good(), "writing '", tmp, "' failed: ", err ? std::strerror(err) : "unknown error (disk full?)");
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

bool process_is_running(long pid) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;  // EPERM: exists, another user's
  // A zombie (ended, not yet reaped) answers kill(pid, 0) but writes nothing any more. Orphans
  // are reaped by PID 1, which in a container may do so late or never: an MPI rank killed with
  // its mpirun (kill -9 of the whole job) stays a zombie, and its step-N.tmp.PID must not count
  // as in use. /proc/PID/stat: "PID (comm) STATE ...", comm may hold spaces and parentheses.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  return close == std::string::npos || close + 2 >= text.size() || text[close + 2] != 'Z';
}

// Splits "NAME.tmp.PID" / "NAME.old.PID" into (NAME, kind, PID); false for any other name.
static bool parse_temporary(const std::string& file, std::string& base, std::string& kind, long& pid) {
  for (const char* k : {".tmp.", ".old."}) {
    size_t at = file.rfind(k);
    if (at == std::string::npos || at == 0) continue;
    std::string digits = file.substr(at + 5);
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    base = file.substr(0, at);
    kind = k;
    pid = std::stol(digits);
    return true;
  }
  return false;
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> actions;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return actions;
  std::vector<fs::path> entries;
  for (auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e.path());
  for (const auto& p : entries) {
    std::string base, kind;
    long pid = 0;
    if (!parse_temporary(p.filename().string(), base, kind, pid) || process_is_running(pid)) continue;
    fs::path original = p.parent_path() / base;
    if (kind == ".old." && !fs::exists(original, ec)) {
      rename_atomically(p.string(), original.string());
      actions.push_back("restored " + original.string() + " from " + p.string());
      continue;
    }
    fs::remove_all(p, ec);
    MODA_CHECK(!ec, "cannot remove the leftover '", p.string(), "' of an interrupted write: ", ec.message());
    actions.push_back("removed " + p.string());
  }
  return actions;
}

}  // namespace moda
