#include "data/shard.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
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
  int fd = ::open(path.c_str(), O_RDONLY);
  MODA_CHECK(fd >= 0, "shard ", path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    MODA_FAIL("shard ", path, ": cannot stat: ", std::strerror(err));
  }
  const auto bytes = static_cast<size_t>(st.st_size);
  if (bytes < kShardHeaderBytes) {
    ::close(fd);
    MODA_FAIL("shard ", path, ": truncated header: file has ", bytes, " bytes, the header alone is ",
              kShardHeaderBytes);
  }
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  MODA_CHECK(map != MAP_FAILED, "shard ", path, ": mmap of ", bytes, " bytes failed: ", std::strerror(err));
  map_ = map;
  map_bytes_ = bytes;
  int32_t head[3];
  std::memcpy(head, map, sizeof(head));
  // Throwing from here leaks nothing: the destructor does not run, so unmap first.
  auto fail = [&](auto&&... parts) {
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    MODA_FAIL("shard ", path, ": ", parts...);
  };
  if (head[0] != kShardMagic)
    fail("bad magic number ", head[0], " at byte offset 0 (expected ", kShardMagic, "; not an llm.c/moda token shard)");
  if (head[1] != 1 && head[1] != 2)
    fail("unsupported version ", head[1], " at byte offset 4 (expected 1 = uint16 or 2 = uint32 tokens)");
  if (head[2] < 0) fail("negative token count ", head[2], " at byte offset 8");
  version_ = head[1];
  count_ = static_cast<size_t>(head[2]);
  const size_t expected = kShardHeaderBytes + count_ * (version_ == 1 ? 2 : 4);
  if (bytes < expected)
    fail("truncated: the header (byte offset 8) says ", count_, " tokens, i.e. ", expected, " bytes, but the file has ",
         bytes, " bytes (data ends at token ", (bytes - kShardHeaderBytes) / (version_ == 1 ? 2 : 4), ")");
  if (bytes > expected)
    fail("the header (byte offset 8) says ", count_, " tokens, i.e. ", expected, " bytes, but the file has ", bytes,
         " bytes (trailing data after byte offset ", expected, ")");
  tokens_ = static_cast<const unsigned char*>(map) + kShardHeaderBytes;
}

ShardView::ShardView(ShardView&& o) noexcept { *this = std::move(o); }

ShardView& ShardView::operator=(ShardView&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, map_bytes_);
    path_ = std::move(o.path_);
    map_ = o.map_, map_bytes_ = o.map_bytes_, tokens_ = o.tokens_;
    version_ = o.version_, count_ = o.count_;
    o.map_ = nullptr, o.tokens_ = nullptr, o.count_ = 0;
  }
  return *this;
}

ShardView::~ShardView() {
  if (map_) ::munmap(map_, map_bytes_);
}

void ShardView::bad_token(size_t i, size_t vocab_size) const {
  MODA_FAIL("shard ", path_, ": token id ", (*this)[i], " at index ", i, " (byte offset ", byte_offset(i),
            ") is not below the vocabulary size ", vocab_size);
}

template <typename T>
void ShardView::read(size_t offset, size_t count, T* out, size_t vocab_size) const {
  MODA_CHECK(offset + count <= count_, "shard ", path_, ": read of tokens [", offset, ", ", offset + count,
             ") past the end (", count_, " tokens)");
  for (size_t i = 0; i < count; ++i) {
    const uint32_t v = (*this)[offset + i];
    if (vocab_size && v >= vocab_size) bad_token(offset + i, vocab_size);
    out[i] = static_cast<T>(v);
  }
}

template void ShardView::read<int32_t>(size_t, size_t, int32_t*, size_t) const;
template void ShardView::read<int64_t>(size_t, size_t, int64_t*, size_t) const;
template void ShardView::read<uint32_t>(size_t, size_t, uint32_t*, size_t) const;

void ShardView::validate(size_t vocab_size) const {
  for (size_t i = 0; i < count_; ++i)
    if ((*this)[i] >= vocab_size) bad_token(i, vocab_size);
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
