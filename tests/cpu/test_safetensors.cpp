#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"

using namespace moda;
namespace fs = std::filesystem;

static fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("moda_test_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(p);
  return p;
}

TEST_CASE("safetensors: round trip of every dtype with metadata", "[cpu][core]") {
  auto dir = temp_dir("st");
  Tensor a = Tensor::randn({3, 5}, 1);
  Tensor b = Tensor::randn({7}, 2, DType::BF16);
  Tensor c = Tensor::from_ints({1, -2, 3}, {3}, DType::I64);
  Tensor d = Tensor::randn({4, 6}, 3).narrow(1, 1, 3);  // non-contiguous view is written contiguously
  std::string path = (dir / "w.safetensors").string();
  save_safetensors(path, {{"a", a}, {"b", b}, {"c", c}, {"d", d}}, {{"step", "12"}});
  auto f = load_safetensors(path);
  REQUIRE(f.metadata.at("step") == "12");
  REQUIRE(f.tensors.at("a").to_float_vector() == a.to_float_vector());
  REQUIRE(f.tensors.at("b").dtype() == DType::BF16);
  REQUIRE(f.tensors.at("b").to_float_vector() == b.to_float_vector());
  REQUIRE(f.tensors.at("c").to_int_vector() == std::vector<int64_t>{1, -2, 3});
  REQUIRE(f.tensors.at("d").shape() == Shape{4, 3});
  REQUIRE(f.tensors.at("d").to_float_vector() == d.to_float_vector());
  fs::remove_all(dir);
}

TEST_CASE("safetensors: truncated and corrupt files give errors naming the file", "[cpu][core]") {
  auto dir = temp_dir("st_bad");
  std::string path = (dir / "w.safetensors").string();
  save_safetensors(path, {{"a", Tensor::randn({100}, 1)}});
  auto size = fs::file_size(path);
  fs::resize_file(path, size - 10);
  REQUIRE_THROWS_WITH(load_safetensors(path), Catch::Contains(path) && Catch::Contains("truncated"));
  { std::ofstream(path, std::ios::binary) << "abc"; }
  REQUIRE_THROWS_WITH(load_safetensors(path), Catch::Contains("too short"));
  REQUIRE_THROWS_WITH(load_safetensors((dir / "missing").string()), Catch::Contains("cannot open"));
  fs::remove_all(dir);
}

TEST_CASE("safetensors: a failed write leaves the previous file intact", "[cpu][core]") {
  auto dir = temp_dir("st_atomic");
  std::string path = (dir / "w.safetensors").string();
  save_safetensors(path, {{"a", Tensor::full({4}, 1.0)}});
  // A duplicate name makes the second save throw before anything is renamed over the file.
  REQUIRE_THROWS(save_safetensors(path, {{"a", Tensor::full({4}, 2.0)}, {"a", Tensor::full({4}, 3.0)}}));
  REQUIRE(load_safetensors(path).tensors.at("a").to_float_vector() == std::vector<float>{1, 1, 1, 1});
  for (auto& e : fs::directory_iterator(dir)) REQUIRE(e.path().filename().string().find(".tmp") == std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("atomic file: a writer interrupted midway leaves the old file and no temporary", "[cpu][core]") {
  auto dir = temp_dir("atomic");
  std::string path = (dir / "state.json").string();
  write_file_atomically(path, [](std::ostream& out) { out << "old complete contents"; });
  REQUIRE_THROWS_WITH(write_file_atomically(path,
                                            [](std::ostream& out) {
                                              out << "new half";
                                              throw Error("simulated crash while writing");
                                            }),
                      Catch::Contains("simulated crash"));
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(s == "old complete contents");
  int files = 0;
  for (auto& e : fs::directory_iterator(dir)) (void)e, ++files;
  REQUIRE(files == 1);
  fs::remove_all(dir);
}
