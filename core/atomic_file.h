#pragma once
// Atomic file replacement: write to a temporary name in the same folder, flush to disk, rename.
// A reader (or a crash) sees either the old file or the complete new one, never half of it.
#include <functional>
#include <ostream>
#include <string>

namespace moda {

// Calls `write` with a stream on a temporary file next to `path`, fsyncs it and renames it onto
// `path`. Throws moda::Error naming the path on any failure (the temporary file is removed).
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

// Renames `from` onto `to` atomically and fsyncs the parent folder (used for checkpoint folders).
void rename_atomically(const std::string& from, const std::string& to);

}  // namespace moda
