// Grouping a sweep's points over seeds: mean and sample standard deviation of each metric.
#include <catch2/catch.hpp>
#include <cmath>

#include "sweep/contrasts.h"
#include "sweep/report_files.h"
#include "sweep/results.h"

namespace sw = moda::sweep;

namespace {

sw::Point point(const std::string& variant, uint64_t seed) {
  sw::Point p;
  p.values = {{"model.variant", variant}};
  p.seed = seed;
  p.name = variant + "-s" + std::to_string(seed);
  return p;
}

sw::PointResult result(const sw::Point& p, double val_loss, std::optional<double> train_loss,
                       sw::PointState state = sw::PointState::Done) {
  sw::PointResult r;
  r.point = &p;
  r.status.state = state;
  r.val_average = sw::SetResult{val_loss, std::exp(val_loss), 10};
  r.train_loss = train_loss;
  return r;
}

}  // namespace

TEST_CASE("sweep spread: mean, sample std, min, max", "[sweep]") {
  const sw::Spread s = sw::summarise({3.0, 3.2, 3.4});
  CHECK(s.n == 3);
  CHECK(s.mean == Approx(3.2));
  CHECK(*s.std == Approx(0.2));  // sqrt((0.04 + 0 + 0.04) / 2)
  CHECK(s.min == 3.0);
  CHECK(s.max == 3.4);
  const sw::Spread one = sw::summarise({5.0});
  CHECK_FALSE(one.std.has_value());
  CHECK(sw::mean_pm_std(s, 3) == "3.200 ± 0.200");
  CHECK(sw::mean_pm_std(one, 2) == "5.00");
}

TEST_CASE("sweep groups: points that differ only in the seed, in order of appearance", "[sweep]") {
  const std::vector<sw::Point> points = {point("sequence", 1), point("sequence", 2), point("sequence", 3),
                                         point("depth_kv_ffn", 1), point("depth_kv_ffn", 2)};
  std::vector<sw::PointResult> results = {result(points[0], 3.0, 3.5), result(points[1], 3.2, 3.7),
                                          result(points[2], 9.0, 9.0, sw::PointState::Partial),  // left out
                                          result(points[3], 2.9, std::nullopt),                  // no train loss logged
                                          result(points[4], 2.7, 3.1)};
  const auto groups = sw::group_over_seeds(results, {"val_loss", "val_ppl", "train_loss", "mfu"});
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].axes == std::vector<std::pair<std::string, std::string>>{{"model.variant", "sequence"}});
  CHECK(groups[0].members.size() == 3);
  CHECK(groups[0].metrics.at("val_loss").n == 2);  // the partial point's values are not averaged in
  CHECK(groups[0].metrics.at("val_loss").mean == Approx(3.1));
  CHECK(*groups[0].metrics.at("val_loss").std == Approx(std::sqrt(0.02)));
  CHECK(groups[0].metrics.at("val_ppl").mean == Approx((std::exp(3.0) + std::exp(3.2)) / 2));
  CHECK(groups[1].metrics.at("val_loss").mean == Approx(2.8));
  // A metric a member lacks is summarised over the members that have it.
  CHECK(groups[1].metrics.at("train_loss").n == 1);
  CHECK(groups[1].metrics.at("train_loss").mean == 3.1);
  CHECK(groups[0].metrics.count("mfu") == 0);  // no member has it
}

TEST_CASE("sweep contrasts: each value minus the baseline, paired by seed, done points only", "[sweep]") {
  sw::Manifest m;
  m.grid = {sw::Axis{"model.variant", {"sequence", "depth_kv", "depth_kv_ffn"}}};
  m.report.contrast = "model.variant";
  const std::vector<sw::Point> points = {point("sequence", 1),     point("sequence", 2),    point("sequence", 3),
                                         point("depth_kv", 1),     point("depth_kv", 2),    point("depth_kv", 3),
                                         point("depth_kv_ffn", 1), point("depth_kv_ffn", 2)};
  const std::vector<sw::PointResult> results = {result(points[0], 3.0, 0),
                                                result(points[1], 3.4, 0),
                                                result(points[2], 3.1, 0, sw::PointState::Partial),
                                                result(points[3], 2.9, 0),
                                                result(points[4], 3.2, 0),
                                                result(points[5], 2.0, 0),  // seed 3: no baseline
                                                result(points[6], 3.1, 0),
                                                result(points[7], 9.9, 0, sw::PointState::Failed)};
  const auto rows = sw::contrasts(m, results, {"val_loss"});
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].value == "depth_kv");
  CHECK(rows[0].baseline == "sequence");
  CHECK(rows[0].axes.empty());
  CHECK(rows[0].pairs == 2);  // seeds 1 and 2; seed 3's baseline is partial
  const sw::Spread& d = rows[0].deltas.at(0).second;
  CHECK(d.n == 2);
  CHECK(d.mean == Approx(-0.15));                          // (-0.1 + -0.2) / 2
  CHECK(*d.std == Approx(std::sqrt(0.005)));               // sample std of -0.1, -0.2
  CHECK(sw::mean_pm_std(d, 3, true) == "-0.150 ± 0.071");  // a difference carries its sign
  CHECK(sw::mean_pm_std(sw::summarise({0.1}), 2, true) == "+0.10");
  CHECK(rows[1].pairs == 1);  // depth_kv_ffn seed 2 failed
  CHECK(rows[1].deltas.at(0).second.mean == Approx(0.1));
  CHECK_FALSE(rows[1].deltas.at(0).second.std.has_value());
  m.report.contrast.clear();
  CHECK(sw::contrasts(m, results, {"val_loss"}).empty());
}
