#pragma once
// File helpers for data/: whole-file reads with errors that name the file, and writers that put
// data under a temporary name and only rename it onto the final path once complete, so a failed
// or interrupted run never leaves half a file under the real name.
#include <cstdio>
#include <string>

namespace moda::data {

// Reads a whole file; `what` says what the file is for in the error ("tokenizer", "input text").
std::string read_file(const std::string& path, const char* what);

class AtomicWriter {
 public:
  explicit AtomicWriter(std::string path);  // opens "<path>.tmp.<pid>" for writing
  AtomicWriter(AtomicWriter&& other) noexcept;
  AtomicWriter& operator=(AtomicWriter&&) = delete;
  ~AtomicWriter();  // removes the temporary file unless committed

  void write(const void* data, size_t bytes);
  void close();   // flushes, fsyncs and closes the temporary file (idempotent)
  void commit();  // close() then rename onto the final path

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

 private:
  std::string path_, temp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace moda::data
