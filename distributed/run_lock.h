#pragma once
// One writer per run folder: an advisory lock on <run>/.lock (flock), holding "host pid". The
// kernel drops the lock when the process ends, however it ends (kill -9 too), so a stale lock
// file never blocks a later run; a second live writer is refused with the holder's host and pid.
#include <string>

namespace moda {

class RunFolderLock {
 public:
  // Creates the folder when missing, then locks it or throws naming the holder.
  explicit RunFolderLock(const std::string& run_dir);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace moda
