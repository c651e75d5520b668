// Token shards (llm.c format) and `tokenize encode`'s corpus writer: round trips, files made by
// other tools, every malformed-shard error, atomic output.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/corpus.h"
#include "data/io.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "tests/test_support.h"

using namespace moda::data;
namespace fs = std::filesystem;

using moda::testing::error_of;
using moda::testing::TempDir;

namespace {

// Writes a file byte by byte the way llm.c's Python scripts do (numpy header + uint16 tokens).
void write_raw(const std::string& path, std::vector<int32_t> header, const void* data, size_t bytes) {
  header.resize(256, 0);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()), 1024);
  out.write(static_cast<const char*>(data), std::streamsize(bytes));
}

std::string fixture(const std::string& name) {
  return read_file(std::string(MODA_SOURCE_DIR) + "/tests/fixtures/tokenizer/" + name, "fixture");
}

const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::train({fixture("gpl3_excerpt.txt")}, 600);
  return t;
}

std::vector<uint32_t> all_tokens(const std::vector<std::string>& shards) {
  std::vector<uint32_t> out;
  for (const auto& p : shards) {
    ShardView v(p);
    for (size_t i = 0; i < v.size(); ++i) out.push_back(v[i]);
  }
  return out;
}

}  // namespace

TEST_CASE("data: shards round-trip in version 1 and 2", "[cpu][data]") {
  TempDir dir("shard_rt");
  std::vector<uint32_t> small = {0, 1, 65535, 42, 7};
  write_shard(dir / "v1.bin", small, 1);
  ShardView v1(dir / "v1.bin");
  CHECK(v1.version() == 1);
  REQUIRE(v1.size() == small.size());
  CHECK(fs::file_size(dir / "v1.bin") == 1024 + 2 * small.size());
  std::vector<int64_t> got(small.size());
  v1.read(0, small.size(), got.data(), 65536);
  CHECK(std::equal(got.begin(), got.end(), small.begin()));

  std::vector<uint32_t> big = {100277, 0, 70000, 3};
  write_shard(dir / "v2.bin", big, 2);
  ShardView v2(dir / "v2.bin");
  CHECK(v2.version() == 2);
  CHECK(v2[0] == 100277);
  CHECK(v2[2] == 70000);
  CHECK(shard_version_for_vocab(65536) == 1);
  CHECK(shard_version_for_vocab(65537) == 2);
  CHECK_THAT(error_of([&] { write_shard(dir / "x.bin", big, 1); }),
             Catch::Contains("token id 100277 at index 0") && Catch::Contains("version 1"));
  CHECK_FALSE(fs::exists(dir / "x.bin"));  // nothing half-written under the real name
  write_shard(dir / "empty.bin", {}, 1);
  CHECK(ShardView(dir / "empty.bin").size() == 0);
}

TEST_CASE("data: shards written by llm.c's scripts load", "[cpu][data]") {
  TempDir dir("shard_llmc");
  std::vector<uint16_t> toks = {50256, 464, 2068, 7586, 21831};  // GPT-2 ids
  write_raw(dir / "fineweb_val_000000.bin", {20240520, 1, 5}, toks.data(), toks.size() * 2);
  ShardView v(dir / "fineweb_val_000000.bin");
  REQUIRE(v.size() == 5);
  for (size_t i = 0; i < 5; ++i) CHECK(v[i] == toks[i]);
  CHECK(find_shards(dir / "fineweb_val_*.bin") == std::vector<std::string>{dir / "fineweb_val_000000.bin"});
}

TEST_CASE("data: malformed shards give errors naming the file and offset", "[cpu][data]") {
  TempDir dir("shard_bad");
  std::vector<uint16_t> toks(10, 3);
  auto err = [&](const std::string& name) { return error_of([&] { ShardView v(dir / name); }); };

  CHECK_THAT(err("missing.bin"), Catch::Contains("missing.bin") && Catch::Contains("No such file"));
  write_raw(dir / "magic.bin", {12345, 1, 10}, toks.data(), 20);
  CHECK_THAT(err("magic.bin"),
             Catch::Contains("magic.bin") && Catch::Contains("bad magic number 12345 at byte offset 0"));
  write_raw(dir / "version.bin", {20240520, 7, 10}, toks.data(), 20);
  CHECK_THAT(err("version.bin"), Catch::Contains("unsupported version 7 at byte offset 4"));
  write_raw(dir / "trunc.bin", {20240520, 1, 10}, toks.data(), 13);
  CHECK_THAT(err("trunc.bin"), Catch::Contains("trunc.bin: truncated") && Catch::Contains("1037 bytes"));
  write_raw(dir / "neg.bin", {20240520, 1, -2}, toks.data(), 0);
  CHECK_THAT(err("neg.bin"), Catch::Contains("negative token count -2 at byte offset 8"));
  write_raw(dir / "long.bin", {20240520, 1, 4}, toks.data(), 20);
  CHECK_THAT(err("long.bin"), Catch::Contains("trailing data after byte offset 1032"));
  { std::ofstream(dir / "short.bin") << "tiny"; }
  CHECK_THAT(err("short.bin"), Catch::Contains("truncated header: file has 4 bytes"));

  // Ids beyond the vocabulary: caught on read and by validate(), with index and byte offset.
  toks[6] = 600;
  write_raw(dir / "vocab.bin", {20240520, 1, 10}, toks.data(), 20);
  ShardView v(dir / "vocab.bin");
  std::vector<int32_t> out(10);
  CHECK_THAT(
      error_of([&] { v.read(0, 10, out.data(), 500); }),
      Catch::Contains("vocab.bin: token id 600 at index 6 (byte offset 1036) is not below the vocabulary size 500"));
  CHECK_THAT(error_of([&] { v.validate(500); }), Catch::Contains("token id 600 at index 6"));
  CHECK_NOTHROW(v.validate(601));
  CHECK_THAT(error_of([&] { find_shards(dir / "nothing_*.bin"); }), Catch::Contains("no shard matches"));
}

TEST_CASE("data: encode_corpus writes EOT-separated train/val shards", "[cpu][data]") {
  TempDir dir("corpus");
  const std::string a = fixture("mpl2_excerpt.txt"), b = fixture("apache2_excerpt.txt");
  std::ofstream(dir / "a.txt", std::ios::binary) << a;
  std::ofstream(dir / "b.txt", std::ios::binary) << b;
  EncodeOptions opt;
  opt.val_fraction = 0.25;
  opt.shard_tokens = 1000;
  opt.chunk_bytes = 512;
  opt.threads = 2;
  auto stats = encode_corpus(tok(), {dir / "a.txt", dir / "b.txt"}, dir / "out/tok", opt);
  REQUIRE(stats.train_shards.size() > 2);  // rolled over every 1000 tokens
  REQUIRE(stats.val_shards.size() >= 1);
  CHECK(stats.train_shards[1] == dir / "out/tok_train_000001.bin");
  for (size_t i = 0; i + 1 < stats.train_shards.size(); ++i) CHECK(ShardView(stats.train_shards[i]).size() == 1000);

  // Each file: train part = its text up to the first line start at or after 75%, val = the rest,
  // each part as <|endoftext|> + tokens.
  const uint32_t eot = tok().eot_id();
  auto cut = [](const std::string& s) { return s.find('\n', size_t(0.75 * double(s.size()))) + 1; };
  auto expect = [&](const std::string& x, const std::string& y) {
    std::vector<uint32_t> e = {eot};
    auto ex = tok().encode(x), ey = tok().encode(y);
    e.insert(e.end(), ex.begin(), ex.end());
    e.push_back(eot);
    e.insert(e.end(), ey.begin(), ey.end());
    return e;
  };
  CHECK(all_tokens(stats.train_shards) == expect(a.substr(0, cut(a)), b.substr(0, cut(b))));
  CHECK(all_tokens(stats.val_shards) == expect(a.substr(cut(a)), b.substr(cut(b))));
  CHECK(stats.train_tokens + stats.val_tokens ==
        all_tokens(stats.train_shards).size() + all_tokens(stats.val_shards).size());
  CHECK(tok().decode(all_tokens(stats.val_shards)) ==
        "<|endoftext|>" + a.substr(cut(a)) + "<|endoftext|>" + b.substr(cut(b)));

  // A second, shorter run under the same prefix removes the first run's extra shards.
  opt.shard_tokens = 100000;
  opt.val_fraction = 0;
  auto again = encode_corpus(tok(), {dir / "a.txt"}, dir / "out/tok", opt);
  CHECK(again.train_shards.size() == 1);
  CHECK(again.val_shards.empty());
  CHECK(find_shards(dir / "out/tok_*.bin") == again.train_shards);
}

TEST_CASE("data: encode_corpus writes nothing when an input is bad", "[cpu][data]") {
  TempDir dir("corpus_bad");
  std::ofstream(dir / "a.txt") << "some text\n";
  std::ofstream(dir / "empty.txt") << "";
  EncodeOptions opt;
  CHECK_THAT(error_of([&] {
               encode_corpus(tok(), {dir / "a.txt", dir / "nope.txt"}, dir / "o/t", opt);
             }),
             Catch::Contains("nope.txt") && Catch::Contains("No such file"));
  CHECK_THAT(error_of([&] {
               encode_corpus(tok(), {dir / "a.txt", dir / "empty.txt"}, dir / "o/t", opt);
             }),
             Catch::Contains("empty.txt' is empty"));
  CHECK_THAT(error_of([&] { encode_corpus(tok(), {}, dir / "o/t", opt); }), Catch::Contains("no input files"));
  opt.val_fraction = 1.0;
  CHECK_THAT(error_of([&] { encode_corpus(tok(), {dir / "a.txt"}, dir / "o/t", opt); }),
             Catch::Contains("--val-fraction 1 is not in [0, 1)"));
  CHECK((!fs::exists(dir / "o") || fs::is_empty(dir / "o")));
  // A tokenizer without <|endoftext|> cannot separate documents.
  Tokenizer no_eot = Tokenizer::train({fixture("gpl3_excerpt.txt")}, 300, BpeTrainOptions{{}, 2});
  opt.val_fraction = 0;
  CHECK_THAT(error_of([&] { encode_corpus(no_eot, {dir / "a.txt"}, dir / "o/t", opt); }),
             Catch::Contains("no <|endoftext|> token"));
  CHECK((!fs::exists(dir / "o") || fs::is_empty(dir / "o")));
}

TEST_CASE("data: shards are byte-identical for 1 and 4 threads on text larger than one 4 MB chunk", "[cpu][data]") {
  TempDir dir("threads");
  // Real text from Debian packages: the licence texts, then copyright files, until > 4 MB plus a
  // margin, so the default chunking cuts the file at least once.
  const size_t target = (size_t(4) << 20) + (size_t(512) << 10);
  std::string text;
  auto sorted_files = [](const fs::path& root, const std::string& inside) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(root)) {
      const fs::path p = inside.empty() ? e.path() : e.path() / inside;
      if (fs::is_regular_file(p)) out.push_back(p);
    }
    std::sort(out.begin(), out.end());  // a fixed order, whatever the directory order
    return out;
  };
  std::vector<fs::path> sources = sorted_files("/usr/share/common-licenses", "");
  for (const auto& p : sorted_files("/usr/share/doc", "copyright")) sources.push_back(p);
  while (text.size() < target) {
    size_t before = text.size();
    for (const auto& p : sources) {
      text += read_file(p.string(), "test input");
      if (text.size() >= target) break;
    }
    REQUIRE(text.size() > before);  // the sources are not all empty
  }
  // Make the 4 MB chunk boundary fall inside a word (between the 't' and 'h' of " the "), where
  // a cut would change the tokens: the encoder must move its cut to a safe split point.
  const size_t boundary = size_t(4) << 20;
  const size_t the = text.find(" the ", boundary);
  REQUIRE(the != std::string::npos);
  text.erase(0, the + 2 - boundary);
  REQUIRE(text.compare(boundary - 2, 3, " th") == 0);
  REQUIRE(text.size() > boundary + 1000);
  const std::string input = dir / "corpus.txt";
  std::ofstream(input, std::ios::binary) << text;

  EncodeOptions one, four, small_chunks;
  one.threads = 1;
  four.threads = 4;
  small_chunks.threads = 4;
  small_chunks.chunk_bytes = 64 << 10;  // many more cuts
  REQUIRE(one.chunk_bytes == size_t(4) << 20);
  const auto a = encode_corpus(tok(), {input}, dir / "one", one);
  const auto b = encode_corpus(tok(), {input}, dir / "four", four);
  const auto c = encode_corpus(tok(), {input}, dir / "small", small_chunks);
  REQUIRE(a.train_shards.size() == 1);
  REQUIRE(b.train_shards.size() == 1);
  REQUIRE(c.train_shards.size() == 1);
  const std::string bytes = read_file(a.train_shards[0], "shard");
  REQUIRE(bytes.size() > 1024 + 2 * text.size() / 8);  // many tokens: the whole text was encoded
  // (Compared as booleans: Catch would print both multi-megabyte operands on failure.)
  const bool four_threads_identical = read_file(b.train_shards[0], "shard") == bytes;
  const bool small_chunks_identical = read_file(c.train_shards[0], "shard") == bytes;
  CHECK(four_threads_identical);
  CHECK(small_chunks_identical);
  // Independent of the chunking code: the shard holds <|endoftext|> then the serial encoding.
  std::vector<uint32_t> expected = {tok().eot_id()};
  const auto ids = tok().encode(text);
  expected.insert(expected.end(), ids.begin(), ids.end());
  const bool equals_serial_encoding = all_tokens(a.train_shards) == expected;
  CHECK(equals_serial_encoding);
}
