#pragma once
// Token shards in llm.c's format: a header of 256 little-endian int32 — [0] magic 20240520,
// [1] version (1: tokens are uint16, 2: tokens are uint32, for vocabularies over 65536 ids),
// [2] token count, the rest 0 — then the tokens. Files written by llm.c's data scripts (version 1)
// load unchanged. Shards are named PREFIX_train_000000.bin, PREFIX_val_000000.bin, ...
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/io.h"

namespace moda::data {

constexpr int32_t kShardMagic = 20240520;
constexpr size_t kShardHeaderInts = 256;
constexpr size_t kShardHeaderBytes = kShardHeaderInts * sizeof(int32_t);
constexpr size_t kMaxShardTokens = 0x7FFFFFFF;  // the count is an int32

// 1 when every id of a `vocab_size` vocabulary fits in uint16, else 2.
int shard_version_for_vocab(size_t vocab_size);

// Writes a whole shard (temp file, then rename). Version 1 refuses ids above 65535.
void write_shard(const std::string& path, std::span<const uint32_t> tokens, int version);

// Streams one shard: tokens are appended, the header's count is filled in by commit().
class ShardWriter {
 public:
  ShardWriter(const std::string& path, int version);
  void append(std::span<const uint32_t> tokens);
  size_t size() const { return count_; }
  void close();   // completes the temporary file
  void commit();  // close() and rename onto the final path
  const std::string& path() const { return file_.path(); }

 private:
  AtomicWriter file_;
  int version_;
  size_t count_ = 0;
  bool closed_ = false;
  std::vector<uint16_t> narrow_;
};

// A read-only shard. The constructor validates the header and the file size and throws
// moda::Error naming the file and the offending byte offset or field. Tokens are read with
// pread(), not through a memory map: a shard that shrinks while open (truncated or rewritten by
// another process) gives an error naming the shard, the offset and the expected size instead
// of killing the process with SIGBUS.
class ShardView {
 public:
  explicit ShardView(const std::string& path);
  ShardView(ShardView&& other) noexcept;
  ShardView& operator=(ShardView&& other) noexcept;
  ShardView(const ShardView&) = delete;
  ShardView& operator=(const ShardView&) = delete;
  ~ShardView();

  const std::string& path() const { return path_; }
  int version() const { return version_; }
  size_t size() const { return count_; }  // tokens
  uint32_t operator[](size_t i) const;    // one pread per call: for tests and spot checks

  // Copies tokens [offset, offset + count) into `out`; with vocab_size > 0 every id is checked
  // (an id >= vocab_size throws, naming the file, the token index and its byte offset).
  template <typename T>
  void read(size_t offset, size_t count, T* out, size_t vocab_size = 0) const;

  // Checks every id against the vocabulary (a full scan, in chunks).
  void validate(size_t vocab_size) const;

  // Byte offset of token i in the file (for error messages).
  size_t byte_offset(size_t i) const { return kShardHeaderBytes + i * token_bytes(); }
  size_t token_bytes() const { return version_ == 1 ? 2 : 4; }

 private:
  [[noreturn]] void bad_token(size_t i, uint32_t id, size_t vocab_size) const;
  // Reads `bytes` bytes at file offset `at`, or throws naming the shard when the file shrank.
  void read_bytes(size_t at, size_t bytes, void* out) const;
  std::string path_;
  int fd_ = -1;
  int version_ = 0;
  size_t count_ = 0;
};

// Name of shard `index` of a split: PREFIX_SPLIT_000123.bin.
std::string shard_name(const std::string& prefix, const std::string& split, size_t index);

// Paths matching a glob pattern ("data/tok_train_*.bin") or a single file, sorted; throws when
// nothing matches.
std::vector<std::string> find_shards(const std::string& pattern);

}  // namespace moda::data
