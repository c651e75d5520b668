#pragma once
// Atomic file replacement: write to a temporary name in the same folder, flush to disk, rename.
// A reader (or a crash) sees either the old file or the complete new one, never half of it.
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace moda {

// Calls `write` with a stream on a temporary file next to `path`, fsyncs it and renames it onto
// `path`. Throws moda::Error naming the path on any failure (the temporary file is removed).
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

// Renames `from` onto `to` atomically and fsyncs the parent folder (used for checkpoint folders).
void rename_atomically(const std::string& from, const std::string& to);

// Leftovers of interrupted writes in `dir`: entries named NAME.tmp.PID or NAME.old.PID (the
// temporaries of write_file_atomically, data::AtomicWriter and checkpoint saves) whose process PID
// no longer runs (kill(PID, 0) fails with ESRCH). A NAME.old.PID whose NAME is missing is the
// only copy left by a swap interrupted between its two renames: it is renamed back to NAME; every
// other leftover is removed. Entries of running processes (including this one) are left alone.
// Returns one line per action ("removed X", "restored X from Y"); a missing `dir` gives none.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

// True while process `pid` exists (on this host).
bool process_is_running(long pid);

}  // namespace moda
