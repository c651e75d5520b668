#pragma once
// Shared by the trainer tests: a tiny real-text corpus (the GPL-3 excerpt) tokenized with a small
// BPE vocabulary, made once per test process, and a tiny CPU training config over it. The BSD
// licence, encoded whole with the same tokenizer, is a second, shorter validation set.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/tokenizer.h"

namespace moda::testing {

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TinyCorpus {
  std::filesystem::path dir;
  TinyCorpus() {
    dir = std::filesystem::temp_directory_path() / ("moda_trainer_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string src = std::string(MODA_SOURCE_DIR) + "/tests/fixtures/tokenizer/gpl3_excerpt.txt";
    auto tok = data::Tokenizer::train({read_text(src)}, 320);
    data::EncodeOptions opt;
    opt.val_fraction = 0.2;
    data::encode_corpus(tok, {src}, (dir / "gpl").string(), opt);
    data::encode_corpus(tok, {"/usr/share/common-licenses/BSD"}, (dir / "bsd").string(), {});
  }
  ~TinyCorpus() { std::filesystem::remove_all(dir); }
};

inline TinyCorpus& tiny_corpus() {
  static TinyCorpus c;
  return c;
}

inline nlohmann::json tiny_config(int64_t steps) {
  auto d = tiny_corpus().dir.string();
  return {{"model",
           {{"vocab_size", 320},
            {"d_model", 32},
            {"n_layers", 2},
            {"n_heads", 4},
            {"n_kv_heads", 2},
            {"ffn_hidden", 64},
            {"variant", "depth_kv_ffn"},
            {"norm", "pre"}}},
          {"data", {{"train", d + "/gpl_train_*.bin"}, {"val", {{"gpl", d + "/gpl_val_*.bin"}}}, {"seq_len", 32}}},
          {"optim", {{"lr", 1e-2}, {"min_lr", 1e-3}, {"warmup_steps", 5}}},
          {"train",
           {{"steps", steps},
            {"global_batch", 8},
            {"micro_batch", 4},
            {"log_every", 1},
            {"device", "cpu"},
            {"eval_max_batches", 4}}}};
}

// Every metrics.jsonl record of a run, in order, except the checkpoint timings
// ({"step": N, "checkpoint": {...}}: wall-clock times, written when the save commits).
inline std::vector<nlohmann::json> metrics_records(const std::filesystem::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (!j.contains("checkpoint")) out.push_back(std::move(j));
  }
  return out;
}

// The checkpoint timing records of a run, in order.
inline std::vector<nlohmann::json> checkpoint_records(const std::filesystem::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("checkpoint")) out.push_back(std::move(j));
  }
  return out;
}

inline std::vector<double> logged_losses(const std::filesystem::path& run) {
  std::vector<double> out;
  for (const auto& j : metrics_records(run))
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  return out;
}

inline std::filesystem::path fresh_run(const std::string& name) {
  std::filesystem::path p = tiny_corpus().dir / name;
  std::filesystem::remove_all(p);
  return p;
}

}  // namespace moda::testing
