#include "data/shard.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace moda::data {

int shard_version_for_vocab(size_t vocab_size) { return vocab_size <= 65536 ? 1 : 2; }

ShardWriter::ShardWriter(const std::string& path, int version) : file_(path), version_(version) {
  MODA_CHECK(version == 1 || version == 2, "shard ", path, ": version ", version, " is not 1 (uint16) or 2 (uint32)");
  std::vector<int32_t> header(kShardHeaderInts, 0);  // count filled in by close()
  file_.write(header.data(), kShardHeaderBytes);
}

void ShardWriter::append(std::span<const uint32_t> tokens) {
  MODA_CHECK(!closed_, "shard ", path(), ": append after close");
  MODA_CHECK(count_ + tokens.size() <= kMaxShardTokens, "shard ", path(), ": more than ", kMaxShardTokens,
             " tokens do not fit the int32 count of the header");
  if (version_ == 2) {
    file_.write(tokens.data(), tokens.size_bytes());
  } else {
    narrow_.resize(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      MODA_CHECK(tokens[i] <= 0xFFFF, "shard ", path(), ": token id ", tokens[i], " at index ", count_ + i,
                 " does not fit version 1 (uint16) shards");
      narrow_[i] = static_cast<uint16_t>(tokens[i]);
    }
    file_.write(narrow_.data(), narrow_.size() * sizeof(uint16_t));
  }
  count_ += tokens.size();
}

void ShardWriter::close() {
  if (closed_) return;
  const int32_t head[3] = {kShardMagic, version_, static_cast<int32_t>(count_)};
  file_.write_at(0, head, sizeof(head));
  file_.close();
  closed_ = true;
}

void ShardWriter::commit() {
  close();
  file_.commit();
}

void write_shard(const std::string& path, std::span<const uint32_t> tokens, int version) {
  ShardWriter w(path, version);
  w.append(tokens);
  w.commit();
}

ShardView::ShardView(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  MODA_CHECK(fd >= 0, "shard ", path, ": cannot open: ", std::strerror(errno));
  // Throwing from here leaks nothing: the destructor does not run, so close first.
  auto fail = [&](auto&&... parts) {
    ::close(fd);
    MODA_FAIL("shard ", path, ": ", parts...);
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("cannot stat: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("not a regular file");
  const auto bytes = static_cast<size_t>(st.st_size);
  if (bytes < kShardHeaderBytes)
    fail("truncated header: file has ", bytes, " bytes, the header alone is ", kShardHeaderBytes);
  int32_t head[3];
  if (::pread(fd, head, sizeof(head), 0) != static_cast<ssize_t>(sizeof(head)))
    fail("cannot read the header: ", std::strerror(errno));
  if (head[0] != kShardMagic)
    fail("bad magic number ", head[0], " at byte offset 0 (expected ", kShardMagic, "; not an llm.c/moda token shard)");
  if (head[1] != 1 && head[1] != 2)
    fail("unsupported version ", head[1], " at byte offset 4 (expected 1 = uint16 or 2 = uint32 tokens)");
  if (head[2] < 0) fail("negative token count ", head[2], " at byte offset 8");
  version_ = head[1];
  count_ = static_cast<size_t>(head[2]);  // <= 2^31 - 1, so the byte count below cannot overflow
  const size_t expected = kShardHeaderBytes + count_ * token_bytes();
  if (bytes < expected)
    fail("truncated: the header (byte offset 8) says ", count_, " tokens, i.e. ", expected, " bytes, but the file has ",
         bytes, " bytes (data ends at token ", (bytes - kShardHeaderBytes) / token_bytes(), ")");
  if (bytes > expected)
    fail("the header (byte offset 8) says ", count_, " tokens, i.e. ", expected, " bytes, but the file has ", bytes,
         " bytes (trailing data after byte offset ", expected, ")");
  fd_ = fd;
}

ShardView::ShardView(ShardView&& o) noexcept { *this = std::move(o); }

ShardView& ShardView::operator=(ShardView&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = o.fd_, version_ = o.version_, count_ = o.count_;
    o.fd_ = -1, o.count_ = 0;
  }
  return *this;
}

ShardView::~ShardView() {
  if (fd_ >= 0) ::close(fd_);
}

void ShardView::read_bytes(size_t at, size_t bytes, void* out) const {
  auto* dst = static_cast<char*>(out);
  size_t done = 0;
  while (done < bytes) {
    ssize_t n = ::pread(fd_, dst + done, bytes - done, static_cast<off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      struct stat st {};
      const long long now = ::fstat(fd_, &st) == 0 ? static_cast<long long>(st.st_size) : -1;
      MODA_FAIL("shard ", path_, ": reading ", bytes, " bytes at byte offset ", at, " failed",
                n < 0 ? std::string(": ") + std::strerror(err) : std::string(": unexpected end of file"),
                "; the file now has ", now, " bytes but had ", byte_offset(count_),
                " when opened (it was truncated or rewritten while in use)");
    }
    done += static_cast<size_t>(n);
  }
}

uint32_t ShardView::operator[](size_t i) const {
  uint32_t v = 0;
  read(i, 1, &v);
  return v;
}

void ShardView::bad_token(size_t i, uint32_t id, size_t vocab_size) const {
  MODA_FAIL("shard ", path_, ": token id ", id, " at index ", i, " (byte offset ", byte_offset(i),
            ") is not below the vocabulary size ", vocab_size);
}

template <typename T>
void ShardView::read(size_t offset, size_t count, T* out, size_t vocab_size) const {
  MODA_CHECK(offset <= count_ && count <= count_ - offset, "shard ", path_, ": read of tokens [", offset, ", ",
             offset + count, ") past the end (", count_, " tokens)");
  if (count == 0) return;
  // Read into the front of `out` when its elements are wide enough, else through a buffer; then
  // widen in place from the back so no element is overwritten before it is read.
  const size_t tb = token_bytes();
  std::vector<unsigned char> buffer;
  unsigned char* raw = reinterpret_cast<unsigned char*>(out);
  if (sizeof(T) < tb) {
    buffer.resize(count * tb);
    raw = buffer.data();
  }
  read_bytes(byte_offset(offset), count * tb, raw);
  for (size_t k = count; k-- > 0;) {
    uint32_t v;
    if (tb == 2) {
      uint16_t h;
      std::memcpy(&h, raw + k * 2, 2);
      v = h;
    } else {
      std::memcpy(&v, raw + k * 4, 4);
    }
    out[k] = static_cast<T>(v);
  }
  if (vocab_size)  // forward, so the first bad id is the one reported
    for (size_t k = 0; k < count; ++k)
      if (static_cast<uint64_t>(out[k]) >= vocab_size) bad_token(offset + k, static_cast<uint32_t>(out[k]), vocab_size);
}

template void ShardView::read<int32_t>(size_t, size_t, int32_t*, size_t) const;
template void ShardView::read<int64_t>(size_t, size_t, int64_t*, size_t) const;
template void ShardView::read<uint32_t>(size_t, size_t, uint32_t*, size_t) const;

void ShardView::validate(size_t vocab_size) const {
  std::vector<uint32_t> chunk(1 << 20);
  for (size_t at = 0; at < count_; at += chunk.size())
    read(at, std::min(chunk.size(), count_ - at), chunk.data(), vocab_size);
}

std::string shard_name(const std::string& prefix, const std::string& split, size_t index) {
  char num[16];
  std::snprintf(num, sizeof(num), "%06zu", index);
  return prefix + "_" + split + "_" + num + ".bin";
}

std::vector<std::string> find_shards(const std::string& pattern) {
  struct stat st {};
  if (pattern.find_first_of("*?[") == std::string::npos) {
    MODA_CHECK(::stat(pattern.c_str(), &st) == 0, "shard ", pattern, ": ", std::strerror(errno));
    return {pattern};
  }
  glob_t g{};
  int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  MODA_CHECK(!out.empty(), "no shard matches '", pattern, "'");
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace moda::data
