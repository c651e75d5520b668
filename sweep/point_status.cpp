#include "sweep/point_status.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/json_config.h"
#include "distributed/resume_check.h"
#include "sweep/point_config.h"

namespace moda::sweep {

const char* state_name(PointState s) {
  switch (s) {
    case PointState::NotStarted: return "not started";
    case PointState::Partial: return "partial";
    case PointState::NoFinalEval: return "no final eval";
    case PointState::Failed: return "failed";
    case PointState::Running: return "running";
    case PointState::Done: return "done";
    case PointState::Stale: return "stale";
  }
  return "?";
}

std::string PointStatus::describe() const {
  const std::string of = " of " + std::to_string(final_step);
  switch (state) {
    case PointState::Stale: {
      std::string s = "stale: trained with another config (";
      for (size_t i = 0; i < stale_fields.size() && i < 3; ++i) s += (i ? "; " : "") + stale_fields[i];
      if (stale_fields.size() > 3) s += "; and " + std::to_string(stale_fields.size() - 3) + " more";
      return s + ")";
    }
    case PointState::Done: return checkpoints_removed ? "done (checkpoints removed)" : "done";
    case PointState::NotStarted:
      return logged_step > 0 ? "not started (step " + std::to_string(logged_step) + of + " logged, no checkpoint)"
                             : "not started";
    case PointState::Partial: return "partial (step " + std::to_string(checkpoint_step) + of + ")";
    case PointState::NoFinalEval: return "final checkpoint without the final evaluation";
    case PointState::Running:
      return "running (pid " + std::to_string(pid) + ", step " + std::to_string(logged_step) + of + " logged)";
    case PointState::Failed: {
      std::string s = "failed (exit " + std::to_string(attempts.back().exit_code);
      if (checkpoint_step > 0) s += ", checkpoint at step " + std::to_string(checkpoint_step) + of;
      return s + ")";
    }
  }
  return "?";
}

// The fields in which the run folder's config.json differs from `resolved` in a way that changes
// the experiment; empty when the folder has no config.json yet.
std::vector<std::string> stale_fields(const std::string& run_dir, const nlohmann::json& resolved) {
  const std::string path = run_dir + "/config.json";
  if (!std::filesystem::exists(path)) return {};
  nlohmann::json saved;
  try {
    saved = resolve_config_document(read_json_file(path));  // fields added since get today's defaults
  } catch (const Error& e) {
    return {std::string("config.json not readable as a config: ") + e.what()};
  }
  return describe_differences(saved, resolved, outcome_neutral_fields(), "run", "manifest");
}

PointStatus inspect_point(const std::string& run_dir, int64_t final_step, bool has_val_sets,
                          const nlohmann::json* expected_config) {
  PointStatus st;
  st.final_step = final_step;
  st.checkpoint_step = latest_checkpoint_step(run_dir);
  st.attempts = read_attempts(run_dir);
  bool final_eval = false;
  for (const auto& r : read_metrics_records(run_dir)) {
    const int64_t step = r["step"].get<int64_t>();
    if (r.contains("eval") && step == final_step) final_eval = true;
    if (r.contains("loss")) st.logged_step = std::max(st.logged_step, step);
  }
  const bool final_checkpoint = st.checkpoint_step == final_step;
  const bool evaluated = final_eval || !has_val_sets;
  st.checkpoints_removed = st.checkpoint_step == 0 && st.logged_step == final_step && evaluated;
  if ((final_checkpoint && evaluated) || st.checkpoints_removed)
    st.state = PointState::Done;
  else if ((st.pid = training_pid(run_dir)) > 0)
    st.state = PointState::Running;
  else if (!st.attempts.empty() && st.attempts.back().exit_code != 0)
    st.state = PointState::Failed;
  else if (final_checkpoint)
    st.state = PointState::NoFinalEval;
  else if (st.checkpoint_step > 0)
    st.state = PointState::Partial;
  else
    st.state = PointState::NotStarted;
  if (expected_config && st.state != PointState::Running) {
    st.stale_fields = stale_fields(run_dir, *expected_config);
    if (!st.stale_fields.empty()) st.state = PointState::Stale;
  }
  return st;
}

}  // namespace moda::sweep
