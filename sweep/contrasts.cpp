#include "sweep/contrasts.h"

#include <cmath>
#include <map>

namespace moda::sweep {

std::vector<ContrastResult> contrasts(const Manifest& m, const std::vector<PointResult>& results,
                                      const std::vector<std::string>& metrics) {
  const std::string& axis = m.report.contrast;
  std::vector<ContrastResult> out;
  if (axis.empty()) return out;
  std::string baseline;
  for (const auto& a : m.grid)
    if (a.key == axis) baseline = value_text(a.values.front());
  // A point's place: the other axes' values (key) and the contrast axis's value.
  auto place = [&](const PointResult& r) {
    std::pair<std::string, std::string> p;
    for (const auto& [k, v] : r.point->values) {
      if (k == axis)
        p.second = value_text(v);
      else
        p.first += k + "=" + value_text(v) + ",";
    }
    return p;
  };
  std::map<std::pair<std::string, uint64_t>, const PointResult*> baselines;  // (others, seed) -> done baseline
  for (const auto& r : results) {
    auto [others, value] = place(r);
    if (value == baseline && r.status.state == PointState::Done) baselines[{others, r.point->seed.value_or(0)}] = &r;
  }
  std::map<std::pair<std::string, std::string>, size_t> index;  // (others, value) -> row
  std::vector<std::map<std::string, std::vector<double>>> diffs;
  for (const auto& r : results) {
    auto [others, value] = place(r);
    if (value == baseline) continue;
    auto [it, fresh] = index.emplace(std::pair{others, value}, out.size());
    if (fresh) {
      ContrastResult c;
      for (const auto& [k, v] : r.point->values)
        if (k != axis) c.axes.emplace_back(k, value_text(v));
      c.value = value, c.baseline = baseline;
      out.push_back(std::move(c));
      diffs.emplace_back();
    }
    auto b = baselines.find({others, r.point->seed.value_or(0)});
    if (r.status.state != PointState::Done || b == baselines.end()) continue;
    ++out[it->second].pairs;
    for (const auto& name : metrics) {
      auto x = r.metric(name), y = b->second->metric(name);
      if (x && y && std::isfinite(*x) && std::isfinite(*y)) diffs[it->second][name].push_back(*x - *y);
    }
  }
  for (size_t i = 0; i < out.size(); ++i)
    for (const auto& name : metrics)
      if (auto d = diffs[i].find(name); d != diffs[i].end()) out[i].deltas.emplace_back(name, summarise(d->second));
  return out;
}

}  // namespace moda::sweep
