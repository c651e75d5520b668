#include "data/io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
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
  // Create missing parent folders, so `--out runs/data/tok` works on a fresh tree.
  const auto parent = std::filesystem::path(path_).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
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
  MODA_CHECK(std::fwrite(data, 1, bytes, file_) == bytes, "cannot write ", bytes, " bytes to '", temp_,
             "': ", std::strerror(errno));
}

void AtomicWriter::write_at(size_t offset, const void* data, size_t bytes) {
  MODA_CHECK(file_, "write to closed file '", temp_, "'");
  bool ok = std::fseek(file_, static_cast<long>(offset), SEEK_SET) == 0 &&
            std::fwrite(data, 1, bytes, file_) == bytes && std::fseek(file_, 0, SEEK_END) == 0;
  MODA_CHECK(ok, "cannot write ", bytes, " bytes at offset ", offset, " of '", temp_, "': ", std::strerror(errno));
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
  MODA_CHECK(std::rename(temp_.c_str(), path_.c_str()) == 0, "cannot rename '", temp_, "' to '", path_,
             "': ", std::strerror(errno));
  committed_ = true;
}

MappedFile::MappedFile(const std::string& path, const char* what) {
  int fd = ::open(path.c_str(), O_RDONLY);
  MODA_CHECK(fd >= 0, "cannot open ", what, " file '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    MODA_FAIL(what, " file '", path, "' is not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);
    if (data_ == MAP_FAILED) {
      data_ = nullptr;
      MODA_FAIL("cannot map ", what, " file '", path, "' (", size_, " bytes): ", std::strerror(err));
    }
    ::madvise(data_, size_, MADV_SEQUENTIAL);
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

void write_file_atomically(const std::string& path, const std::string& content) {
  AtomicWriter w(path);
  w.write(content.data(), content.size());
  w.commit();
}

}  // namespace moda::data
