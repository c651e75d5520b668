#include "sweep/points_table.h"

#include <algorithm>
#include <cstdio>

namespace moda::sweep {

static std::string fixed(double v, const char* fmt) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

static std::string count(double v) {  // 460123 -> "460.1k", 1.5e8 -> "150.00M"
  return v >= 1e6 ? fixed(v / 1e6, "%.2fM") : fixed(v / 1e3, "%.1fk");
}

std::string format_points_table(const Manifest& m, const std::vector<Point>& points,
                                const std::vector<PointConfig>& configs, const std::vector<PointStatus>* statuses) {
  std::vector<std::string> header = {"#", "run"};
  for (const auto& k : m.axis_keys()) header.push_back(k);
  if (!m.seeds.empty()) header.push_back("seed");
  for (const char* h : {"params", "tokens", "train FLOPs"}) header.push_back(h);
  if (statuses) header.push_back("state");
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < points.size(); ++i) {
    const Point& p = points[i];
    const PointConfig& c = configs[i];
    std::vector<std::string> row = {std::to_string(i + 1), p.name};
    for (const auto& [k, v] : p.values) row.push_back(value_text(v));
    if (p.seed) row.push_back(std::to_string(*p.seed));
    row.push_back(count(static_cast<double>(c.params.total)));
    row.push_back(count(static_cast<double>(c.planned_tokens())));
    row.push_back(fixed(c.flops_per_token * static_cast<double>(c.planned_tokens()), "%.3g"));
    if (statuses) row.push_back((*statuses)[i].describe());
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(header.size());
  for (size_t j = 0; j < header.size(); ++j) {
    width[j] = header[j].size();
    for (const auto& r : rows) width[j] = std::max(width[j], r[j].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t j = 0; j < cells.size(); ++j) {
      std::string cell = cells[j];
      if (j + 1 < cells.size()) cell.resize(width[j], ' ');
      s += (j ? "  " : "") + cell;
    }
    return s + "\n";
  };
  std::string out = line(header);
  for (const auto& r : rows) out += line(r);
  return out;
}

}  // namespace moda::sweep
