#pragma once
// The points of a sweep: the cartesian product of the grid axes, the zip groups (each one
// dimension whose values move in lock-step) and the seeds (innermost, so a configuration's seeds
// sit next to each other), each named by the manifest's run-name template.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sweep/manifest.h"

namespace moda::sweep {

struct Point {
  std::string name;                                            // the rendered run name
  std::vector<std::pair<std::string, nlohmann::json>> values;  // axis key -> value, in axis order
  std::optional<uint64_t> seed;                                // from manifest.seeds
  // The key of the point's group over seeds: the axis values without the seed ("" without axes).
  std::string group_key() const;
};

// The text an axis value stands for in a run name or a table: strings as they are, other
// scalars as JSON ("pre", 24, 0.001, true).
std::string value_text(const nlohmann::json& v);

// Fills the template: "{model.norm}-L{model.n_layers}-s{seed}". Every placeholder must be an
// axis key or "seed" (when seeds are given); errors name manifest.run_name.
std::string render_run_name(const std::string& tmpl, const Point& point, bool have_seeds);

// Every point, in order (first axis slowest, seeds fastest). Run names must be unique (a
// template that leaves out an axis that varies is an error naming the clashing points) and
// usable as a folder name (letters, digits, '.', '_', '-', '+', '=').
std::vector<Point> expand_points(const Manifest& m);

}  // namespace moda::sweep
