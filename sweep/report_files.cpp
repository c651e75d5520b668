#include "sweep/report_files.h"

#include <cmath>
#include <cstdio>

namespace moda::sweep {

namespace {

std::string num(std::optional<double> v, const char* fmt = "%.6g") {
  if (!v || !std::isfinite(*v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, *v);
  return buf;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

nlohmann::json opt(std::optional<double> v) { return v && std::isfinite(*v) ? nlohmann::json(*v) : nlohmann::json(); }

// The per-point columns shared by the CSV and Markdown tables.
std::vector<std::string> point_header(const ReportInput& in) {
  std::vector<std::string> h = {"run"};
  for (const auto& k : in.manifest->axis_keys()) h.push_back(k);
  if (!in.manifest->seeds.empty()) h.push_back("seed");
  for (const char* c : {"state", "params", "tokens", "train_loss"}) h.push_back(c);
  for (const auto& s : in.val_sets) h.insert(h.end(), {"val_loss/" + s, "val_ppl/" + s});
  for (const char* c : {"val_loss", "val_ppl", "tokens_per_s", "mfu", "wall_s"}) h.push_back(c);
  return h;
}

std::vector<std::string> point_row(const ReportInput& in, const PointResult& r) {
  std::vector<std::string> row = {r.point->name};
  for (const auto& [k, v] : r.point->values) row.push_back(value_text(v));
  if (!in.manifest->seeds.empty()) row.push_back(r.point->seed ? std::to_string(*r.point->seed) : "");
  row.push_back(state_name(r.status.state));
  row.push_back(std::to_string(r.params));
  row.push_back(r.tokens > 0 ? std::to_string(r.tokens) : "");
  row.push_back(num(r.train_loss, "%.4f"));
  for (const auto& s : in.val_sets) {
    row.push_back(num(r.metric("val_loss/" + s), "%.4f"));
    row.push_back(num(r.metric("val_ppl/" + s), "%.3f"));
  }
  row.push_back(num(r.metric("val_loss"), "%.4f"));
  row.push_back(num(r.metric("val_ppl"), "%.3f"));
  row.push_back(num(r.tokens_per_s, "%.0f"));
  row.push_back(num(r.mfu, "%.4f"));
  row.push_back(num(r.wall_s, "%.1f"));
  return row;
}

std::string md_row(const std::vector<std::string>& cells) {
  std::string s = "|";
  for (const auto& c : cells) {
    s += ' ';
    s += c.empty() ? std::string("–") : c;
    s += " |";
  }
  return s + "\n";
}

std::string md_rule(size_t n) {
  std::string s = "|";
  for (size_t i = 0; i < n; ++i) s += "---|";
  return s + "\n";
}

int digits_for(const std::string& metric) {
  if (metric == "params" || metric == "tokens" || metric == "tokens_per_s") return 0;
  if (metric == "wall_s") return 1;
  if (metric.find("ppl") != std::string::npos) return 3;
  return 4;
}

}  // namespace

std::string mean_pm_std(const Spread& s, int digits, bool sign) {
  char buf[96];
  if (s.std)
    std::snprintf(buf, sizeof buf, sign ? "%+.*f ± %.*f" : "%.*f ± %.*f", digits, s.mean, digits, *s.std);
  else
    std::snprintf(buf, sizeof buf, sign ? "%+.*f" : "%.*f", digits, s.mean);
  return buf;
}

std::string results_csv(const ReportInput& in) {
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i) out += ',';
      out += csv_cell(cells[i]);
    }
    out += "\n";
  };
  line(point_header(in));
  for (const auto& r : in.points) line(point_row(in, r));
  return out;
}

nlohmann::json results_json(const ReportInput& in) {
  const Manifest& m = *in.manifest;
  nlohmann::json points = nlohmann::json::array();
  for (const auto& r : in.points) {
    nlohmann::json axes = nlohmann::json::object(), val = nlohmann::json::object();
    for (const auto& [k, v] : r.point->values) axes[k] = v;
    for (const auto& [name, s] : r.val) val[name] = {{"loss", s.loss}, {"ppl", s.ppl}, {"tokens", s.tokens}};
    points.push_back({{"run", r.point->name},
                      {"run_dir", r.run_dir},
                      {"axes", axes},
                      {"seed", r.point->seed ? nlohmann::json(*r.point->seed) : nlohmann::json()},
                      {"state", state_name(r.status.state)},
                      {"status", r.status.describe()},
                      {"params", r.params},
                      {"tokens", r.tokens},
                      {"train_loss", opt(r.train_loss)},
                      {"val", val},
                      {"val_average", r.val_average ? nlohmann::json{{"loss", r.val_average->loss},
                                                                     {"ppl", r.val_average->ppl},
                                                                     {"tokens", r.val_average->tokens}}
                                                    : nlohmann::json()},
                      {"tokens_per_s", opt(r.tokens_per_s)},
                      {"mfu", opt(r.mfu)},
                      {"wall_s", opt(r.wall_s)}});
  }
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& g : in.groups) {
    nlohmann::json axes = nlohmann::json::object(), metrics = nlohmann::json::object(), runs = nlohmann::json::array();
    for (const auto& [k, v] : g.axes) axes[k] = v;
    for (const PointResult* r : g.members) runs.push_back(r->point->name);
    for (const auto& [name, s] : g.metrics)
      metrics[name] = {{"mean", s.mean}, {"std", opt(s.std)}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
    groups.push_back({{"axes", axes}, {"runs", runs}, {"metrics", metrics}});
  }
  nlohmann::json contrasts = nlohmann::json::array();
  for (const auto& c : in.contrasts) {
    nlohmann::json axes = nlohmann::json::object(), deltas = nlohmann::json::object();
    for (const auto& [k, v] : c.axes) axes[k] = v;
    for (const auto& [name, s] : c.deltas)
      deltas[name] = {{"mean", s.mean}, {"std", opt(s.std)}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
    contrasts.push_back({{"axes", axes},
                         {"axis", m.report.contrast},
                         {"value", c.value},
                         {"baseline", c.baseline},
                         {"pairs", c.pairs},
                         {"deltas", deltas}});
  }
  return {{"sweep", m.name},       {"manifest", m.path},      {"axes", m.axis_keys()},
          {"seeds", m.seeds},      {"val_sets", in.val_sets}, {"group_metrics", m.report.metrics},
          {"points", points},      {"groups", groups},        {"contrast", m.report.contrast},
          {"contrasts", contrasts}};
}

std::vector<std::string> contrast_metrics(const std::vector<std::string>& val_sets) {
  std::vector<std::string> out = {"val_loss"};
  for (const auto& s : val_sets) out.push_back("val_loss/" + s);
  return out;
}

namespace {

std::string contrast_markdown(const ReportInput& in) {
  const Manifest& m = *in.manifest;
  const std::string& axis = m.report.contrast;
  const std::string baseline = in.contrasts.empty() ? "its first value" : in.contrasts.front().baseline;
  std::string md = "\n## " + axis + " against " + baseline + ", paired by seed\n\n";
  md += "Δ = the value's final validation loss minus the baseline's, per seed, then mean ± sample std over the ";
  md += "seeds whose two runs are done (negative: better than " + baseline + "). Pairing takes out what a seed ";
  md += "does to both runs; compare Δ with its spread and with the seed spread of the table above.\n\n";
  std::vector<std::string> header;
  for (const auto& k : m.axis_keys())
    if (k != axis) header.push_back(k);
  header.push_back(axis);
  header.push_back("seeds paired");
  for (const auto& name : contrast_metrics(in.val_sets)) header.push_back("Δ " + name);
  md += md_row(header) + md_rule(header.size());
  for (const auto& c : in.contrasts) {
    std::vector<std::string> row;
    for (const auto& [k, v] : c.axes) row.push_back(v);
    row.push_back(c.value);
    row.push_back(std::to_string(c.pairs));
    for (const auto& name : contrast_metrics(in.val_sets)) {
      std::string cell;
      for (const auto& [n, s] : c.deltas)
        if (n == name) cell = mean_pm_std(s, 4, true);
      row.push_back(cell);
    }
    md += md_row(row);
  }
  return md;
}

}  // namespace

std::string results_markdown(const ReportInput& in, const std::vector<std::string>& plots,
                             const std::string& plot_note) {
  const Manifest& m = *in.manifest;
  std::string md = "# Sweep " + m.name + "\n\n";
  md += "Manifest `" + m.path + "`, " + std::to_string(in.points.size()) + " points, run folders under `" +
        m.runs_dir() + "`. Validation values are from each run's final evaluation (whole sets); train loss is " +
        "the last logged step's; tokens/s leaves out the first logged window (start-up).\n\n";
  md += "## Points\n\n";
  const auto header = point_header(in);
  md += md_row(header) + md_rule(header.size());
  for (const auto& r : in.points) md += md_row(point_row(in, r));
  md += "\n## Mean ± spread over seeds\n\n";
  md += "Spread: the sample standard deviation over the seeds (n − 1); a single value has none.\n\n";
  std::vector<std::string> gh;
  for (const auto& k : m.axis_keys()) gh.push_back(k);
  gh.push_back("seeds done");
  for (const auto& metric : m.report.metrics) gh.push_back(metric);
  md += md_row(gh) + md_rule(gh.size());
  for (const auto& g : in.groups) {
    std::vector<std::string> row;
    for (const auto& [k, v] : g.axes) row.push_back(v);
    // Seeds done of those listed: a mean over fewer seeds than planned says so.
    size_t done = 0;
    for (const PointResult* r : g.members) done += r->status.state == PointState::Done;
    row.push_back(done == g.members.size() ? std::to_string(done)
                                           : std::to_string(done) + " of " + std::to_string(g.members.size()));
    for (const auto& metric : m.report.metrics) {
      auto it = g.metrics.find(metric);
      row.push_back(it == g.metrics.end() ? "" : mean_pm_std(it->second, digits_for(metric)));
    }
    md += md_row(row);
  }
  if (!m.report.contrast.empty()) md += contrast_markdown(in);
  md += "\n## Plots\n\n";
  if (plots.empty()) md += plot_note + "\n";
  for (const auto& p : plots) md += "![" + p + "](" + p + ")\n\n";
  return md;
}

}  // namespace moda::sweep
