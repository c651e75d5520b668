// Grouping a sweep's points over seeds: mean and sample standard deviation of each metric.
#include <catch2/catch.hpp>
#include <cmath>

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
