// Issue 13: bad input must give an error naming the file/option and the field, in the project's
// words, before anything large is allocated, and must never crash the process.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json_config.h"
#include "core/safetensors.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "distributed/train_config.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using namespace moda;

using moda::testing::error_of;
using moda::testing::TempDir;

namespace {

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string deep_array(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// A config whose shards exist: 2000 tokens cycling through 0..299.
nlohmann::json small_config(const TempDir& dir) {
  std::vector<uint32_t> toks(2000);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = uint32_t(i * 7 % 300);
  data::write_shard(dir / "tiny_train_000000.bin", toks, 1);
  return {{"model",
           {{"vocab_size", 320},
            {"d_model", 32},
            {"n_layers", 2},
            {"n_heads", 4},
            {"n_kv_heads", 2},
            {"ffn_hidden", 64},
            {"variant", "depth_kv_ffn"},
            {"norm", "pre"}}},
          {"data", {{"train", dir / "tiny_train_*.bin"}, {"seq_len", 32}}},
          {"train", {{"steps", 3}, {"global_batch", 4}, {"micro_batch", 4}, {"device", "cpu"}}}};
}

}  // namespace

TEST_CASE("bad input: JSON nested 100000 deep is refused with the limit, not a crash", "[cpu][reliability]") {
  TempDir dir("deep");
  const std::string deep = deep_array(100000);
  CHECK(json_nesting_depth(deep) == kMaxJsonDepth + 1);                 // counting stops early
  CHECK(json_nesting_depth(R"({"a": "[[[[", "b": [{"c": 1}]})") == 3);  // brackets in strings do not count
  CHECK_THAT(error_of([&] { parse_json_text(deep, "test input"); }),
             Catch::Contains("test input: JSON nested deeper than the limit of 64 levels"));
  CHECK_NOTHROW(parse_json_text(deep_array(kMaxJsonDepth), "ok"));

  // The config reader: {"model": [[[...]]]}, the shape that crashed moda train.
  write_text(dir / "deep.json", "{\"model\": " + deep + "}");
  CHECK_THAT(error_of([&] { load_train_config(dir / "deep.json", {}); }),
             Catch::Contains("config file '" + (dir / "deep.json") + "'") && Catch::Contains("limit of 64"));
  // A --set value.
  write_text(dir / "ok.json", small_config(dir).dump());
  CHECK_THAT(error_of([&] { load_train_config(dir / "ok.json", {"model.x=" + deep}); }),
             Catch::Contains("--set 'model.x=[[[[") && Catch::Contains("deeper than the limit of 64"));
  // tokenizer.json.
  write_text(dir / "tokenizer.json", "{\"model\": {\"vocab\": " + deep + "}}");
  CHECK_THAT(error_of([&] { data::Tokenizer::load(dir / "tokenizer.json"); }),
             Catch::Contains("tokenizer file '" + (dir / "tokenizer.json") + "'") && Catch::Contains("limit of 64"));
  // A safetensors header.
  {
    std::string header = "{\"__metadata__\": " + deep_array(1000) + "}";
    header.append((8 - header.size() % 8) % 8, ' ');
    uint64_t n = header.size();
    std::ofstream out(dir / "deep.safetensors", std::ios::binary);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header;
  }
  CHECK_THAT(error_of([&] { load_safetensors(dir / "deep.safetensors"); }),
             Catch::Contains("deep.safetensors: header: JSON nested deeper than the limit of 64"));
}

TEST_CASE("bad input: JSON syntax errors name the file without nlohmann's exception prefix", "[cpu][reliability]") {
  TempDir dir("syntax");
  write_text(dir / "c.json", "{\"model\": {\"d_model\": 32,}}");
  std::string msg = error_of([&] { read_json_file(dir / "c.json"); });
  CHECK_THAT(msg, Catch::StartsWith("config file '" + (dir / "c.json") +
                                    "': not valid JSON (at byte 26): parse error "
                                    "at line 1, column 26"));
  CHECK_THAT(msg, !Catch::Contains("[json.exception"));
  CHECK_THAT(error_of([&] { read_json_file(dir / "missing.json"); }),
             Catch::Contains("cannot open config file '" + (dir / "missing.json") + "'"));
}

TEST_CASE("bad input: integer fields reject 2.7, true, -1 and out-of-range values naming the field",
          "[cpu][reliability]") {
  nlohmann::json j = {{"steps", 2.7}, {"flag", true}, {"seed", -1}, {"small", 5000000000LL}, {"ok", 12}, {"x", 3}};
  FieldReader r(j, "train");
  CHECK_THAT(error_of([&] { r.get<int64_t>("steps", 1); }),
             Catch::Equals("train.steps: value 2.7 has the wrong type: expected an integer"));
  CHECK_THAT(error_of([&] { r.get<int64_t>("flag", 1); }),
             Catch::Equals("train.flag: value true has the wrong type: expected an integer"));
  CHECK_THAT(error_of([&] { r.get<uint64_t>("seed", 1); }),
             Catch::Equals("train.seed: value -1 has the wrong type: expected a non-negative integer"));
  CHECK_THAT(error_of([&] { r.get<int>("small", 1); }), Catch::Contains("train.small: value 5000000000"));
  CHECK(r.get<int64_t>("ok", 1) == 12);
  CHECK(r.get<double>("x", 0.5) == 3.0);  // an integer is a fine number
  CHECK_THAT(error_of([&] { r.get<std::string>("x", ""); }),
             Catch::Equals("train.x: value 3 has the wrong type: expected a string"));

  // End to end through --set, the way issue 13 found it (train.steps=2.7 trained 2 steps).
  TempDir dir("int");
  write_text(dir / "c.json", small_config(dir).dump());
  CHECK_THAT(error_of([&] { load_train_config(dir / "c.json", {"train.steps=2.7"}); }),
             Catch::Contains("train.steps: value 2.7 has the wrong type: expected an integer"));
  CHECK(load_train_config(dir / "c.json", {"train.steps=7"}).train.steps == 7);
}

TEST_CASE("bad input: --set into a string or list names the option and the key, not type_error.305",
          "[cpu][reliability]") {
  nlohmann::json config = {{"data", {{"train", "x_*.bin"}, {"val", {1, 2}}}}};
  CHECK_THAT(error_of([&] { apply_override(config, "data.train.x=1"); }),
             Catch::Equals("--set 'data.train.x=1': 'data.train' is a string, not a section with fields, so 'x' "
                           "cannot be set inside it"));
  CHECK_THAT(error_of([&] { apply_override(config, "data.val.a.b=1"); }),
             Catch::Contains("'data.val' is a list, not a section with fields"));
  CHECK_THAT(error_of([&] { apply_override(config, "data..x=1"); }), Catch::Contains("empty key component"));
  apply_override(config, "data.seq_len=64");
  CHECK(config["data"]["seq_len"] == 64);
}

TEST_CASE("bad input: safetensors header fields are checked in our words, sizes before allocation",
          "[cpu][reliability]") {
  TempDir dir("st");
  auto write_st = [&](const std::string& name, const std::string& json, size_t data_bytes) {
    std::string header = json;
    header.append((8 - header.size() % 8) % 8, ' ');
    uint64_t n = header.size();
    std::ofstream out(dir / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << std::string(data_bytes, '\0');
    return dir / name;
  };
  auto p = write_st("meta.st", R"({"__metadata__": {"step": 5}})", 0);
  CHECK_THAT(error_of([&] { load_safetensors(p); }),
             Catch::Equals(p + ": __metadata__ field 'step' must be a string, got 5"));
  // A shape of 2^40 x 2^40 floats must fail on its size, not try to allocate it.
  p = write_st("huge.st", R"({"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776], "data_offsets": [0, 8]}})",
               8);
  CHECK_THAT(error_of([&] { load_safetensors(p); }), Catch::Contains("tensor 'w' shape [1099511627776, 1099511627776]"
                                                                     " overflows a 64-bit byte count"));
  p = write_st("big.st", R"({"w": {"dtype": "F32", "shape": [1000000000], "data_offsets": [0, 8]}})", 8);
  CHECK_THAT(error_of([&] { load_safetensors(p); }),
             Catch::Contains("tensor 'w' has 8 bytes, but dtype and shape [1000000000] need 4000000000"));
  p = write_st("neg.st", R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8);
  CHECK_THAT(error_of([&] { load_safetensors(p); }), Catch::Contains("tensor 'w' has a negative dimension -2"));
  p = write_st("noshape.st", R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", 8);
  CHECK_THAT(error_of([&] { load_safetensors(p); }), Catch::Equals(p + ": tensor 'w': missing field 'shape'"));
  p = write_st("strshape.st", R"({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})", 8);
  CHECK_THAT(error_of([&] { load_safetensors(p); }), Catch::Contains("tensor 'w': shape must be a list of integers"));
  p = write_st("offs.st", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, -8]}})", 8);
  CHECK_THAT(error_of([&] { load_safetensors(p); }),
             Catch::Contains("tensor 'w': data_offsets must be two non-negative integers"));
  // A header length beyond the 100 MB limit of the format (file padded so it is not "truncated").
  {
    uint64_t n = 200'000'000;
    std::ofstream out(dir / "len.st", std::ios::binary);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.seekp(std::streamoff(8 + n));
    out << ' ';
  }
  CHECK_THAT(error_of([&] { load_safetensors(dir / "len.st"); }),
             Catch::Contains("header length 200000000 is over the safetensors limit of 100000000 bytes"));
}

TEST_CASE("bad input: an absurd token id in tokenizer.json is refused before the id tables are allocated",
          "[cpu][reliability]") {
  // The layout of the repo's fixture, with one id changed.
  nlohmann::json j =
      nlohmann::json::parse(std::ifstream(MODA_SOURCE_DIR "/tests/fixtures/tokenizer/hf_tokenizer.json"));
  const size_t n = j["model"]["vocab"].size() + j["added_tokens"].size();
  auto with_id = [&](const std::string& token, int64_t id) {
    nlohmann::json k = j;
    k["model"]["vocab"][token] = id;
    return error_of([&] { data::Tokenizer::from_json(k, "tok.json"); });
  };
  CHECK_THAT(with_id("!", 1600000000),
             Catch::Equals("tokenizer tok.json: model.vocab[\"!\"]: id 1600000000 is over the limit of 16777215"));
  CHECK_THAT(with_id("!", 1000000), Catch::StartsWith("tokenizer tok.json: model.vocab[\"!\"]: id 1000000 leaves most "
                                                      "ids unused (" +
                                                      std::to_string(n) + " tokens in all)"));
  // A non-string pre_tokenizer type used to escape as nlohmann's type_error.302.
  nlohmann::json k = j;
  k["pre_tokenizer"]["type"] = 5;
  CHECK_THAT(error_of([&] { data::Tokenizer::from_json(k, "tok.json"); }),
             Catch::Contains("tokenizer tok.json: pre_tokenizer.type: '' is not supported"));
}

TEST_CASE("bad input: loader and config sizes are bounded before allocation", "[cpu][reliability]") {
  TempDir dir("sizes");
  nlohmann::json c = small_config(dir);
  data::LoaderOptions o;
  o.shards = {dir / "tiny_train_000000.bin"};
  o.seq_len = 1000000000;
  CHECK_THAT(error_of([&] { data::TrainLoader l(o); }),
             Catch::Equals("train loader: seq_len 1000000000 is over the limit of 16777216"));
  o.seq_len = 1 << 20;
  o.batch_size = 1 << 12;
  CHECK_THAT(error_of([&] { data::EvalLoader l(o); }),
             Catch::Equals("eval loader: batch_size 4096 x seq_len 1048576 is over the limit of 2147483648 tokens "
                           "per batch"));
  // A window longer than every shard: refused before the window buffer is sized.
  o.batch_size = 1;
  o.seq_len = 1 << 20;
  CHECK_THAT(error_of([&] { data::TrainLoader l(o); }), Catch::Contains("hold 0 windows of 1048577 tokens"));
  data::EvalLoader eval(o);  // one partial window per shard; its buffer is the shard's size, not T
  std::vector<int32_t> in(o.seq_len), tg(o.seq_len);
  int64_t valid = 0;
  CHECK(eval.next(in.data(), tg.data(), &valid));
  CHECK(valid == 1999);

  write_text(dir / "c.json", c.dump());
  CHECK_THAT(error_of([&] { load_train_config(dir / "c.json", {"data.seq_len=1000000000"}); }),
             Catch::Contains("data.seq_len: value 1000000000 is invalid: must be <= 16777216"));
  CHECK_THAT(error_of([&] {
               load_train_config(dir / "c.json",
                                 {"data.seq_len=16777216", "train.micro_batch=1024", "train.global_batch=1024"});
             }),
             Catch::Contains("train.micro_batch: value 1024 is invalid: micro_batch x data.seq_len must be <= "
                             "2147483648 tokens"));
}

TEST_CASE("bad input: a shard truncated between batches gives an error naming shard, offset and size",
          "[cpu][reliability]") {
  TempDir dir("shrink");
  std::vector<uint32_t> toks(4000);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = uint32_t(i % 251);
  const std::string path = dir / "s_train_000000.bin";
  data::write_shard(path, toks, 1);
  data::LoaderOptions o;
  o.shards = {path};
  o.seq_len = 64;
  o.batch_size = 8;
  data::TrainLoader loader(o);
  std::vector<int32_t> in(8 * 64), tg(8 * 64);
  loader.next(in.data(), tg.data());
  // Independent check of the first row: inputs are consecutive ids of the cycle 0..250.
  for (int t = 1; t < 64; ++t) CHECK(in[t] == (in[t - 1] + 1) % 251);

  // Another process truncates the shard (what `truncate` did during training: SIGBUS with mmap).
  fs::resize_file(path, 1024 + 100);
  std::string msg = error_of([&] {
    for (int i = 0; i < 100; ++i) loader.next(in.data(), tg.data());
  });
  CHECK_THAT(msg, Catch::StartsWith("shard " + path + ": reading 130 bytes at byte offset "));
  CHECK_THAT(msg, Catch::Contains("the file now has 1124 bytes but had 9024 when opened (it was truncated or "
                                  "rewritten while in use)"));
  // A view opened before the shrink, read token by token.
  data::write_shard(path, toks, 1);
  data::ShardView view(path);
  fs::resize_file(path, 2000);
  CHECK(view[100] == 100);  // still in the file
  CHECK_THAT(error_of([&] { (void)view[3999]; }), Catch::Contains("reading 2 bytes at byte offset 9022 failed"));
  CHECK_THAT(error_of([&] { view.validate(300); }), Catch::Contains("shard " + path + ": reading"));
}
