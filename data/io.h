#pragma once
// File helpers for data/: whole-file reads with errors that name the file, and writers that put
// data under a temporary name and only rename it onto the final path once complete, so a failed
// or interrupted run never leaves half a file under the real name.
#include <cstdio>
#include <string>
#include <string_view>

namespace moda::data {

// Reads a whole file; `what` says what the file is for in the error ("tokenizer", "input text").
std::string read_file(const std::string& path, const char* what);

class AtomicWriter {
 public:
  // Opens "<path>.tmp.<pid>" for writing, creating missing parent folders.
  explicit AtomicWriter(std::string path);
  AtomicWriter(AtomicWriter&& other) noexcept;
  AtomicWriter& operator=(AtomicWriter&&) = delete;
  ~AtomicWriter();  // removes the temporary file unless committed

  void write(const void* data, size_t bytes);
  void write_at(size_t offset, const void* data, size_t bytes);  // overwrite, then back to the end
  void close();   // flushes, fsyncs and closes the temporary file (idempotent)
  void commit();  // close() then rename onto the final path

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

 private:
  std::string path_, temp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// A whole file mapped read-only (an empty file gives an empty view).
class MappedFile {
 public:
  MappedFile(const std::string& path, const char* what);
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  std::string_view view() const { return {static_cast<const char*>(data_), size_}; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace moda::data
