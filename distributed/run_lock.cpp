#include "distributed/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace moda {

namespace {
std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}
}  // namespace

RunFolderLock::RunFolderLock(const std::string& run_dir) {
  std::error_code ec;
  std::filesystem::create_directories(run_dir, ec);
  MODA_CHECK(!ec, "cannot create the run folder '", run_dir, "': ", ec.message());
  const std::string path = (std::filesystem::path(run_dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  MODA_CHECK(fd_ >= 0, "cannot open the run-folder lock ", path, ": ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    std::ifstream in(path);
    std::stringstream holder;
    holder << in.rdbuf();
    std::string who = holder.str();
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    MODA_CHECK(err != EWOULDBLOCK, "run folder '", run_dir, "' is in use by another moda process (",
               who.empty() ? std::string("holder unknown") : who, ", lock file ", path,
               "); wait for it to finish or choose another --run-dir");
    MODA_FAIL("cannot lock the run folder '", run_dir, "' (", path, "): ", std::strerror(err));
  }
  const std::string me = "host " + host_name() + ", pid " + std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size()))
    MODA_FAIL("cannot write the run-folder lock ", path, ": ", std::strerror(errno));
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock; the file stays (harmless, re-locked next time)
}

}  // namespace moda
