// Sweep manifests: grid and zip expansion, run-name templates, and the errors that name the
// manifest field at fault before anything trains.
#include <catch2/catch.hpp>
#include <fstream>

#include "sweep/manifest.h"
#include "sweep/plan.h"
#include "sweep/points.h"
#include "tests/test_support.h"

using moda::testing::error_of;
using moda::testing::TempDir;
using nlohmann::json;
namespace sw = moda::sweep;

namespace {

// A small valid training config (its data files need not exist: plans here allow that).
json base_config() {
  return json::parse(R"({
    "model": {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2, "n_kv_heads": 1, "ffn_hidden": 64,
              "variant": "sequence", "norm": "pre", "max_seq_len": 16},
    "data": {"train": "nowhere/train_*.bin", "val": {"a": "nowhere/a_*.bin", "b": "nowhere/b_*.bin"},
             "seq_len": 16},
    "train": {"steps": 4, "global_batch": 2, "micro_batch": 2}
  })");
}

json manifest_doc() {
  json m = {{"name", "t"},
            {"base", base_config()},
            {"grid", {{"model.norm", {"pre", "post"}}, {"model.variant", {"sequence", "depth_kv_ffn"}}}},
            {"seeds", {1, 2}},
            {"run_name", "{model.norm}-{model.variant}-s{seed}"},
            {"output", "out"}};
  return m;
}

std::vector<std::string> names(const std::vector<sw::Point>& points) {
  std::vector<std::string> out;
  for (const auto& p : points) out.push_back(p.name);
  return out;
}

}  // namespace

TEST_CASE("sweep grid: cartesian product in key order, seeds innermost", "[sweep]") {
  const auto points = sw::expand_points(sw::manifest_from_json(manifest_doc(), ""));
  CHECK(names(points) == std::vector<std::string>{"pre-sequence-s1", "pre-sequence-s2", "pre-depth_kv_ffn-s1",
                                                  "pre-depth_kv_ffn-s2", "post-sequence-s1", "post-sequence-s2",
                                                  "post-depth_kv_ffn-s1", "post-depth_kv_ffn-s2"});
  REQUIRE(points[2].values.size() == 2);
  CHECK(points[2].values[0].first == "model.norm");
  CHECK(points[2].values[1].second == "depth_kv_ffn");
  CHECK(*points[3].seed == 2);
  CHECK(points[2].group_key() == points[3].group_key());  // differ only in the seed
  CHECK(points[2].group_key() != points[4].group_key());
}

TEST_CASE("sweep zip: lists move in lock-step, one dimension per group", "[sweep]") {
  json doc = manifest_doc();
  doc.erase("seeds");
  doc["grid"] = {{"model.norm", {"pre", "post"}}};
  doc["zip"] = json::array({{{"model.n_layers", {2, 4, 6}}, {"train.micro_batch", {2, 1, 1}}}});
  doc["run_name"] = "{model.norm}-L{model.n_layers}-mb{train.micro_batch}";
  const auto points = sw::expand_points(sw::manifest_from_json(doc, ""));
  CHECK(names(points) == std::vector<std::string>{"pre-L2-mb2", "pre-L4-mb1", "pre-L6-mb1", "post-L2-mb2",
                                                  "post-L4-mb1", "post-L6-mb1"});
  CHECK_FALSE(points[0].seed.has_value());
  // Each point's config carries its values (and the seed when there are seeds).
  const sw::Plan plan = sw::make_plan(sw::manifest_from_json(doc, ""), sw::DataFiles::MayBeMissing);
  CHECK(plan.configs[4].config.model.n_layers == 4);
  CHECK(plan.configs[4].config.train.micro_batch == 1);
  CHECK(plan.configs[4].overrides ==
        std::vector<std::string>{"model.norm=\"post\"", "model.n_layers=4", "train.micro_batch=1"});
  CHECK(plan.run_dir(4) == "out/runs/post-L4-mb1");
}

TEST_CASE("sweep seeds set train.seed, and the fixed set overrides apply to every point", "[sweep]") {
  json doc = manifest_doc();
  doc["set"] = {{"train.steps", 7}};
  const sw::Plan plan = sw::make_plan(sw::manifest_from_json(doc, ""), sw::DataFiles::MayBeMissing);
  REQUIRE(plan.configs.size() == 8);
  CHECK(plan.configs[0].config.train.seed == 1);
  CHECK(plan.configs[1].config.train.seed == 2);
  for (const auto& c : plan.configs) CHECK(c.config.train.steps == 7);
  CHECK(plan.configs[0].planned_tokens() == 7 * 2 * 16);
  CHECK(plan.configs[0].params.total > 0);
  // depth_kv_ffn adds depth projections: more parameters than sequence
  CHECK(plan.configs[2].params.total > plan.configs[0].params.total);
}

TEST_CASE("sweep run-name template: placeholders, uniqueness, folder-safe names", "[sweep]") {
  sw::Point p;
  p.values = {{"model.n_layers", 24}, {"optim.lr", 0.001}, {"model.norm", "post"}};
  p.seed = 3;
  CHECK(sw::render_run_name("{model.norm}-L{model.n_layers}-lr{optim.lr}-s{seed}", p, true) == "post-L24-lr0.001-s3");
  CHECK_THAT(
      error_of([&] { sw::render_run_name("{model.nrom}", p, true); }),
      Catch::Contains("manifest.run_name: placeholder {model.nrom} is not an axis") && Catch::Contains("{model.norm}"));
  CHECK_THAT(error_of([&] { sw::render_run_name("x-{seed}", p, false); }),
             Catch::Contains("{seed} but manifest.seeds is not given"));
  CHECK_THAT(error_of([&] { sw::render_run_name("{model.norm", p, true); }), Catch::Contains("without its '}'"));

  json doc = manifest_doc();
  doc["run_name"] = "{model.norm}-s{seed}";  // leaves out the variant, which varies
  CHECK_THAT(error_of([&] { sw::expand_points(sw::manifest_from_json(doc, "")); }),
             Catch::Contains("manifest.run_name") && Catch::Contains("same name 'pre-s1'"));
  doc["run_name"] = "{model.norm}/{model.variant}-s{seed}";
  CHECK_THAT(error_of([&] { sw::expand_points(sw::manifest_from_json(doc, "")); }),
             Catch::Contains("not usable as a folder name"));
}

TEST_CASE("sweep manifest: shape errors name the manifest field", "[sweep]") {
  auto err = [](const std::function<void(json&)>& edit) {
    json doc = manifest_doc();
    edit(doc);
    return error_of([&] { sw::make_plan(sw::manifest_from_json(doc, "m.json"), sw::DataFiles::MayBeMissing); });
  };
  CHECK_THAT(err([](json& d) { d["grdi"] = json::object(); }), Catch::Contains("manifest: unknown field 'grdi'"));
  CHECK_THAT(err([](json& d) { d["grid"]["model.norm"] = json::array(); }),
             Catch::Contains("manifest.grid.model.norm: the list of values is empty"));
  CHECK_THAT(err([](json& d) { d["grid"]["model.norm"] = "pre"; }),
             Catch::Contains("manifest.grid.model.norm: expected a list of values"));
  CHECK_THAT(err([](json& d) { d["grid"]["norm"] = {"pre"}; }), Catch::Contains("manifest.grid.norm: key 'norm'"));
  CHECK_THAT(err([](json& d) {
               d["zip"] = json::array({{{"model.n_layers", {2, 4}}, {"train.steps", {1}}}});
             }),
             Catch::Contains("manifest.zip[0].train.steps: has 1 values") && Catch::Contains("lock-step"));
  CHECK_THAT(err([](json& d) { d["seeds"] = json::array(); }), Catch::Contains("manifest.seeds: expected a non-empty"));
  CHECK_THAT(err([](json& d) { d["seeds"] = {1, -2}; }), Catch::Contains("manifest.seeds[1]"));
  CHECK_THAT(err([](json& d) { d["seeds"] = {1, 1}; }), Catch::Contains("manifest.seeds[1]: seed 1 is listed twice"));
  CHECK_THAT(err([](json& d) { d.erase("output"); }), Catch::Contains("manifest: missing required field 'output'"));
  CHECK_THAT(err([](json& d) { d["base"] = 3; }), Catch::Contains("manifest.base: expected a config file path"));
  CHECK_THAT(err([](json& d) {
               d["set"] = {{"model.norm", "post"}};
             }),
             Catch::Contains("manifest.set.model.norm: key is also an axis"));
  CHECK_THAT(err([](json& d) {
               d["report"] = {{"metrics", {"val_los"}}};
             }),
             Catch::Contains("manifest.report.metrics[0]: unknown metric 'val_los'"));
}

TEST_CASE("sweep manifest: keys and values the training config refuses name the manifest field", "[sweep]") {
  auto err = [](const std::function<void(json&)>& edit) {
    json doc = manifest_doc();
    edit(doc);
    return error_of([&] { sw::make_plan(sw::manifest_from_json(doc, "m.json"), sw::DataFiles::MayBeMissing); });
  };
  // A key that is no field of the training config.
  CHECK_THAT(err([](json& d) { d["grid"]["model.nrom"] = {"pre"}; }),
             Catch::Contains("manifest.grid.model.nrom[0]") && Catch::Contains("unknown field 'nrom'"));
  CHECK_THAT(err([](json& d) {
               d["set"] = {{"train.stepz", 3}};
             }),
             Catch::Contains("manifest.base with manifest.set") && Catch::Contains("unknown field 'stepz'"));
  // A value the field's rule refuses: the index of the value is named.
  CHECK_THAT(err([](json& d) {
               d["grid"]["model.norm"] = {"pre", "middle"};
             }),
             Catch::Contains("manifest.grid.model.norm[1]") && Catch::Contains("model.norm"));
  CHECK_THAT(err([](json& d) {
               d["zip"] = json::array({{{"model.n_layers", {2, 0}}}});
             }),
             Catch::Contains("manifest.zip[0] index 1") && Catch::Contains("model.n_layers"));
  CHECK_THAT(err([](json& d) {
               d["report"] = {{"val_sets", {"a", "c"}}};
             }),
             Catch::Contains("manifest.report.val_sets[1]: 'c' is not a validation set") && Catch::Contains("a, b"));
}

TEST_CASE("sweep manifest: a base path is relative to the manifest's folder", "[sweep]") {
  TempDir dir("sweep_manifest");
  std::filesystem::create_directories(dir.path / "configs");
  std::ofstream(dir / "configs/base.json") << base_config().dump();
  json doc = manifest_doc();
  doc["base"] = "configs/base.json";
  std::ofstream(dir / "m.json") << doc.dump();
  const sw::Manifest m = sw::load_manifest(dir / "m.json");
  CHECK(m.base_path == dir / "configs/base.json");
  CHECK(m.base["train"]["steps"] == 4);
  doc["base"] = "configs/missing.json";
  std::ofstream(dir / "m.json") << doc.dump();
  CHECK_THAT(error_of([&] { sw::load_manifest(dir / "m.json"); }), Catch::Contains("configs/missing.json"));
}

TEST_CASE("sweep plan: missing data files are refused for a run, allowed for a dry run", "[sweep]") {
  const sw::Manifest m = sw::manifest_from_json(manifest_doc(), "");
  CHECK_THAT(error_of([&] { sw::make_plan(m, sw::DataFiles::MustExist); }),
             Catch::Contains("point 'pre-sequence-s1'") && Catch::Contains("no file matches 'nowhere/train_*.bin'"));
  CHECK(sw::make_plan(m, sw::DataFiles::MayBeMissing).points.size() == 8);
  CHECK(sw::missing_data_files(m.base).size() == 3);
}
