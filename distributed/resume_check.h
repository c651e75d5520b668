#pragma once
// What may change when a run is resumed. A field that defines the model, the data order or the
// optimiser's state (model.*, data.train, data.seq_len, train.global_batch, train.micro_batch,
// train.seed, optim.beta1, ...) must equal the checkpoint's; the fields below may differ.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moda {

// Resolved-config fields (dotted paths) a resume may change; a path also covers what is below it.
const std::vector<std::string>& resumable_fields();

// Resolved-config fields that change neither the trained weights' recipe nor the final evaluation:
// logging, evaluation and checkpoint cadence, which kernels or memory scheme compute the same
// operator, how the state is spread. A sweep point trained under other values of these is still
// the same experiment (sweep/point_status.h); any other difference makes its results stale.
const std::vector<std::string>& outcome_neutral_fields();

// Dotted paths of the leaves that differ between two JSON documents (present in one only counts).
std::vector<std::string> differing_fields(const nlohmann::json& a, const nlohmann::json& b);

// "path: <name_a> A, <name_b> B" for each differing leaf not covered by `allowed` (a path covers
// what is below it).
std::vector<std::string> describe_differences(const nlohmann::json& a, const nlohmann::json& b,
                                              const std::vector<std::string>& allowed, const std::string& name_a,
                                              const std::string& name_b);

// Throws naming every differing field that is not resumable, with both values.
void check_resume_config(const nlohmann::json& saved, const nlohmann::json& now, const std::string& checkpoint);

}  // namespace moda
