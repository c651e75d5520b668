#include "sweep/results.h"

#include <algorithm>
#include <cmath>

#include "sweep/run_folder.h"

namespace moda::sweep {

std::optional<double> PointResult::metric(const std::string& name) const {
  if (name == "train_loss") return train_loss;
  if (name == "val_loss") return val_average ? std::optional<double>(val_average->loss) : std::nullopt;
  if (name == "val_ppl") return val_average ? std::optional<double>(val_average->ppl) : std::nullopt;
  if (name == "tokens_per_s") return tokens_per_s;
  if (name == "mfu") return mfu;
  if (name == "wall_s") return wall_s;
  if (name == "params") return static_cast<double>(params);
  if (name == "tokens") return tokens > 0 ? std::optional<double>(static_cast<double>(tokens)) : std::nullopt;
  for (const char* prefix : {"val_loss/", "val_ppl/"}) {
    const std::string p = prefix;
    if (name.rfind(p, 0) != 0) continue;
    auto it = val.find(name.substr(p.size()));
    if (it == val.end()) return std::nullopt;
    return p == "val_loss/" ? it->second.loss : it->second.ppl;
  }
  return std::nullopt;
}

namespace {

double number(const nlohmann::json& r, const char* key) {
  return r.contains(key) && r[key].is_number() ? r[key].get<double>() : NAN;
}

// Throughput over the windows between training records, the first one left out when there are
// others (it holds start-up and, on a GPU, kernel compilation).
void add_throughput(PointResult& out, const std::vector<nlohmann::json>& train_records) {
  double tokens = 0, seconds = 0, mfu_seconds = 0, mfu_sum = 0;
  for (size_t i = train_records.size() > 1 ? 1 : 0; i < train_records.size(); ++i) {
    const double tps = number(train_records[i], "tokens_per_s");
    const double prev = i > 0 ? number(train_records[i - 1], "tokens") : 0;
    const double dt = (number(train_records[i], "tokens") - prev) / tps;
    if (!(tps > 0) || !std::isfinite(dt) || dt <= 0) continue;
    tokens += number(train_records[i], "tokens") - prev;
    seconds += dt;
    const double mfu = number(train_records[i], "mfu");
    if (std::isfinite(mfu)) mfu_sum += mfu * dt, mfu_seconds += dt;
  }
  if (seconds > 0) out.tokens_per_s = tokens / seconds;
  if (mfu_seconds > 0) out.mfu = mfu_sum / mfu_seconds;
}

void add_final_eval(PointResult& out, const nlohmann::json& eval, const std::vector<std::string>& sets) {
  if (!eval.contains("sets") || !eval["sets"].is_object()) return;
  double weighted = 0;
  int64_t tokens = 0;
  for (const auto& name : sets) {
    if (!eval["sets"].contains(name)) continue;
    const auto& s = eval["sets"][name];
    SetResult r{number(s, "loss"), number(s, "ppl"), static_cast<int64_t>(number(s, "tokens"))};
    out.val[name] = r;
    weighted += r.loss * static_cast<double>(r.tokens);
    tokens += r.tokens;
  }
  if (tokens > 0) {
    const double loss = weighted / static_cast<double>(tokens);
    out.val_average = SetResult{loss, std::exp(loss), tokens};
  }
}

}  // namespace

PointResult collect_result(const Point& p, const PointConfig& c, const std::string& run_dir,
                           const std::vector<std::string>& val_sets) {
  PointResult out;
  out.point = &p;
  out.run_dir = run_dir;
  out.status = inspect_point(run_dir, c.config.train.steps, !c.config.data.val.empty(), &c.config.resolved);
  out.params = c.params.total;
  std::vector<std::string> sets = val_sets;
  if (sets.empty())
    for (const auto& [name, shards] : c.config.data.val) sets.push_back(name);
  std::vector<nlohmann::json> train_records;
  for (const auto& r : read_metrics_records(run_dir)) {
    if (r.contains("eval") && r["step"].get<int64_t>() == c.config.train.steps) add_final_eval(out, r["eval"], sets);
    if (r.contains("loss")) train_records.push_back(r);
  }
  if (!train_records.empty()) {
    out.train_loss = number(train_records.back(), "loss");
    out.tokens = static_cast<int64_t>(number(train_records.back(), "tokens"));
    add_throughput(out, train_records);
  }
  if (!out.status.attempts.empty()) {
    double wall = 0;
    for (const auto& a : out.status.attempts) wall += a.seconds;
    out.wall_s = wall;
  }
  return out;
}

Spread summarise(const std::vector<double>& values) {
  Spread s;
  s.n = static_cast<int>(values.size());
  if (values.empty()) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / s.n;
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  if (s.n > 1) {
    double sq = 0;
    for (double v : values) sq += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(sq / (s.n - 1));
  }
  return s;
}

std::vector<GroupResult> group_over_seeds(const std::vector<PointResult>& results,
                                          const std::vector<std::string>& metrics) {
  std::vector<GroupResult> groups;
  std::map<std::string, size_t> index;
  for (const auto& r : results) {
    auto [it, fresh] = index.emplace(r.point->group_key(), groups.size());
    if (fresh) {
      GroupResult g;
      for (const auto& [k, v] : r.point->values) g.axes.emplace_back(k, value_text(v));
      groups.push_back(std::move(g));
    }
    groups[it->second].members.push_back(&r);
  }
  for (auto& g : groups)
    for (const auto& name : metrics) {
      std::vector<double> values;
      for (const PointResult* r : g.members) {
        if (r->status.state != PointState::Done) continue;  // a partial run's loss is not comparable
        if (auto v = r->metric(name); v && std::isfinite(*v)) values.push_back(*v);
      }
      if (!values.empty()) g.metrics[name] = summarise(values);
    }
  return groups;
}

}  // namespace moda::sweep
