#include "data/io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace moda::data {

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  MODA_CHECK(in.good(), "cannot open ", what, " file '", path, "': ", std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  MODA_CHECK(!in.bad(), "error reading ", what, " file '", path, "'");
  return std::move(buf).str();
}

AtomicWriter::AtomicWriter(std::string path)
    : path_(std::move(path)), temp_(path_ + ".tmp." + std::to_string(::getpid())) {
  file_ = std::fopen(temp_.c_str(), "wb");
  MODA_CHECK(file_, "cannot create '", temp_, "' (for '", path_, "'): ", std::strerror(errno));
}

AtomicWriter::AtomicWriter(AtomicWriter&& o) noexcept
    : path_(std::move(o.path_)), temp_(std::move(o.temp_)), file_(o.file_), committed_(o.committed_) {
  o.file_ = nullptr;
  o.committed_ = true;  // the moved-from object owns nothing to clean up
}

AtomicWriter::~AtomicWriter() {
  if (file_) std::fclose(file_);
  if (!committed_) std::remove(temp_.c_str());
}

void AtomicWriter::write(const void* data, size_t bytes) {
  MODA_CHECK(file_, "write to closed file '", temp_, "'");
  if (bytes == 0) return;
  MODA_CHECK(std::fwrite(data, 1, bytes, file_) == bytes, "cannot write ", bytes, " bytes to '",
             temp_, "': ", std::strerror(errno));
}

void AtomicWriter::close() {
  if (!file_) return;
  bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  int err = errno;
  ok = (std::fclose(file_) == 0) && ok;
  file_ = nullptr;
  MODA_CHECK(ok, "cannot finish writing '", temp_, "': ", std::strerror(err ? err : errno));
}

void AtomicWriter::commit() {
  close();
  MODA_CHECK(std::rename(temp_.c_str(), path_.c_str()) == 0, "cannot rename '", temp_, "' to '",
             path_, "': ", std::strerror(errno));
  committed_ = true;
}

void write_file_atomically(const std::string& path, const std::string& content) {
  AtomicWriter w(path);
  w.write(content.data(), content.size());
  w.commit();
}

}  // namespace moda::data
