// Every error path of docs/data-formats.md §4, one section per table row: each message must name
// what the table says it names (file, field, byte offset, values), so a user can act on it.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/corpus.h"
#include "data/io.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "tests/test_support.h"

using namespace moda::data;
using Catch::Contains;
namespace fs = std::filesystem;

using moda::testing::error_of;
using moda::testing::TempDir;

namespace {

const std::string kLicense = "/usr/share/common-licenses/BSD";  // real text, ~1.5 kB

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A valid tokenizer saved to `path`, returned as its JSON (for tests that corrupt one field).
nlohmann::json saved_tokenizer(const std::string& path) {
  Tokenizer::train({read_file(kLicense, "test")}, 300).save(path);
  return nlohmann::json::parse(read_file(path, "test"));
}

void write_json(const std::string& path, const nlohmann::json& j) { write_bytes(path, j.dump()); }

}  // namespace

TEST_CASE("data errors: missing files name the path and the OS error", "[cpu][data]") {
  TempDir dir("data_errors");
  const std::string missing = dir / "no_such_file";
  const auto os_error = Contains(std::strerror(ENOENT));
  REQUIRE_THROWS_WITH(Tokenizer::load(missing), Contains(missing) && os_error);
  REQUIRE_THROWS_WITH(ShardView(missing), Contains(missing) && os_error);
  Tokenizer tok = Tokenizer::train({read_file(kLicense, "test")}, 300);
  REQUIRE_THROWS_WITH(encode_corpus(tok, {kLicense, missing}, dir / "out", {}), Contains(missing) && os_error);
  REQUIRE(fs::is_empty(dir.path));  // inputs are checked before anything is written
}

TEST_CASE("data errors: invalid tokenizer JSON names the file and the byte offset", "[cpu][data]") {
  TempDir dir("data_errors");
  const std::string path = dir / "broken.json";
  write_bytes(path, "{\"model\": {\"vocab\": [1, 2,, 3]}}");  // the second ',' is byte 27 (1-based)
  REQUIRE_THROWS_WITH(Tokenizer::load(path), Contains(path) && Contains("not valid JSON") && Contains("at byte 27"));
}

TEST_CASE("data errors: unsupported or inconsistent tokenizer fields name the file and the field", "[cpu][data]") {
  TempDir dir("data_errors");
  const std::string path = dir / "tok.json";
  const nlohmann::json good = saved_tokenizer(path);
  REQUIRE_NOTHROW(Tokenizer::load(path));

  SECTION("a merge that is not two tokens") {
    auto j = good;
    j["model"]["merges"][3] = "nospace";
    write_json(path, j);
    REQUIRE_THROWS_WITH(Tokenizer::load(path),
                        Contains(path) && Contains("model.merges[3]") && Contains("\"left right\""));
  }
  SECTION("a merge whose parts are not in the vocabulary") {
    auto j = good;
    j["model"]["merges"][12] = "zzqq xxyy";
    write_json(path, j);
    REQUIRE_THROWS_WITH(Tokenizer::load(path),
                        Contains(path) && Contains("model.merges[12]") && Contains("not in model.vocab"));
  }
  SECTION("an empty added token") {
    auto j = good;
    REQUIRE(j["added_tokens"].size() >= 1);
    j["added_tokens"][0]["content"] = "";
    write_json(path, j);
    REQUIRE_THROWS_WITH(Tokenizer::load(path), Contains(path) && Contains("added_tokens[0].content"));
  }
  SECTION("BPE dropout") {
    auto j = good;
    j["model"]["dropout"] = 0.1;
    write_json(path, j);
    REQUIRE_THROWS_WITH(Tokenizer::load(path), Contains(path) && Contains("model.dropout"));
  }
  SECTION("a normalizer other than NFC") {
    auto j = good;
    j["normalizer"] = {{"type", "NFKC"}};
    write_json(path, j);
    REQUIRE_THROWS_WITH(Tokenizer::load(path), Contains(path) && Contains("normalizer.type: 'NFKC' is not supported"));
  }
}

TEST_CASE("data errors: malformed shards name the file, the byte offset and the sizes", "[cpu][data]") {
  TempDir dir("data_errors");
  const std::string path = dir / "s.bin";
  const std::vector<uint32_t> ten = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

  SECTION("shorter than its header") {
    write_bytes(path, std::string(100, '\0'));
    REQUIRE_THROWS_WITH(ShardView(path), Contains(path) && Contains("truncated header: file has 100 bytes"));
  }
  SECTION("wrong magic") {
    write_shard(path, ten, 1);
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    const int32_t magic = 12345;
    f.write(reinterpret_cast<const char*>(&magic), 4);
    f.close();
    REQUIRE_THROWS_WITH(ShardView(path), Contains(path) && Contains("bad magic number 12345 at byte offset 0"));
  }
  SECTION("wrong version") {
    write_shard(path, ten, 1);
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(4);
    const int32_t version = 7;
    f.write(reinterpret_cast<const char*>(&version), 4);
    f.close();
    REQUIRE_THROWS_WITH(ShardView(path), Contains(path) && Contains("unsupported version 7 at byte offset 4"));
  }
  SECTION("truncated data") {
    write_shard(path, ten, 1);  // 1024 + 10 * 2 = 1044 bytes
    fs::resize_file(path, 1034);
    REQUIRE_THROWS_WITH(ShardView(path), Contains(path) && Contains("byte offset 8") && Contains("10 tokens") &&
                                             Contains("1044 bytes") && Contains("the file has 1034 bytes"));
  }
  SECTION("trailing data") {
    write_shard(path, ten, 2);  // 1024 + 10 * 4 = 1064 bytes
    std::ofstream(path, std::ios::binary | std::ios::app) << "xy";
    REQUIRE_THROWS_WITH(ShardView(path), Contains(path) && Contains("byte offset 8") && Contains("1064 bytes") &&
                                             Contains("the file has 1066 bytes"));
  }
  SECTION("a token id at or above the vocabulary") {
    write_shard(path, std::vector<uint32_t>{1, 2, 299, 300, 4}, 1);
    REQUIRE_NOTHROW(ShardView(path).validate(301));
    // Token 3 (id 300) sits at byte 1024 + 3 * 2 = 1030.
    REQUIRE_THROWS_WITH(ShardView(path).validate(300), Contains(path) && Contains("token id 300 at index 3") &&
                                                           Contains("byte offset 1030") &&
                                                           Contains("vocabulary size 300"));
    LoaderOptions o;
    o.shards = {path};
    o.seq_len = 4;
    o.vocab_size = 300;
    EvalLoader loader(o);
    std::vector<int32_t> in(4), tgt(4);
    REQUIRE_THROWS_WITH(loader.next(in.data(), tgt.data()),
                        Contains("token id 300") && Contains("vocabulary size 300"));
  }
  SECTION("a version-1 shard asked to hold an id above 65535") {
    REQUIRE_THROWS_WITH(write_shard(path, std::vector<uint32_t>{5, 65535, 65536}, 1),
                        Contains("token id 65536 at index 2") && Contains("version 1"));
    REQUIRE_FALSE(fs::exists(path));
  }
}

TEST_CASE("data errors: encode refuses bad inputs and options naming the option or file", "[cpu][data]") {
  TempDir dir("data_errors");
  Tokenizer tok = Tokenizer::train({read_file(kLicense, "test")}, 300);
  const std::string empty = dir / "empty.txt";
  write_bytes(empty, "");
  REQUIRE_THROWS_WITH(encode_corpus(tok, {kLicense, empty}, dir / "out", {}), Contains(empty) && Contains("empty"));
  REQUIRE_THROWS_WITH(encode_corpus(tok, {}, dir / "out", {}), Contains("no input files"));
  for (double f : {-0.1, 1.0}) {
    EncodeOptions o;
    o.val_fraction = f;
    REQUIRE_THROWS_WITH(encode_corpus(tok, {kLicense}, dir / "out", o), Contains("--val-fraction"));
  }
  BpeTrainOptions no_specials;
  no_specials.special_tokens = {};
  Tokenizer bare = Tokenizer::train({read_file(kLicense, "test")}, 300, no_specials);
  REQUIRE_THROWS_WITH(encode_corpus(bare, {kLicense}, dir / "out", {}), Contains("<|endoftext|>"));
  fs::remove(empty);
  REQUIRE(fs::is_empty(dir.path));  // nothing written by any failed run
}

TEST_CASE("data errors: a loader state that does not fit names the field, saved and current values", "[cpu][data]") {
  TempDir dir("data_errors");
  std::vector<uint32_t> tokens(1000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(i % 250);
  write_shard(dir / "a.bin", tokens, 1);
  LoaderOptions o;
  o.shards = {dir / "a.bin"};
  o.batch_size = 2;
  o.seq_len = 8;
  o.seed = 3;
  TrainLoader saved(o);
  const auto state = saved.state();
  o.seq_len = 16;
  TrainLoader now(o);
  REQUIRE_THROWS_WITH(now.load_state(state), Contains("seq_len is 8 in the saved state but 16 now"));

  EvalLoader eval(o);
  auto eval_state = eval.state();
  eval_state["cursor"] = 1000000;
  REQUIRE_THROWS_WITH(eval.load_state(eval_state), Contains("cursor 1000000"));
}
