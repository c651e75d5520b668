// moda checkpoint export --checkpoint X --tokenizer FILE --out DIR [--dtype f32|bf16] [--force]
// The bridge to other frameworks (docs/interop.md): a checkpoint's weights as one safetensors file
// under the model's state-dict names, a config.json holding everything a reimplementation reads
// (tools/moda_torch.py is one), and the tokenizer the run's shards were encoded with.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/args.h"
#include "apps/checkpoint_model.h"
#include "apps/command.h"
#include "apps/exit_codes.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_config.h"
#include "data/tokenizer.h"
#include "distributed/checkpoint.h"
#include "distributed/rank_agreement.h"
#include "nn/language_model.h"

namespace moda::app {
namespace fs = std::filesystem;

namespace {

// Bumped when a reader of the folder would have to change (a renamed field, a new convention).
constexpr int kExportFormatVersion = 1;

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MODA_CHECK(in, "cannot read '", path, "'");
  std::ostringstream s;
  s << in.rdbuf();
  MODA_CHECK(!in.bad(), "cannot read '", path, "'");
  return s.str();
}

// True when `inner` is `outer` or lies inside it (both made absolute, symlinks resolved).
bool is_within(const fs::path& inner, const fs::path& outer) {
  const std::string a = fs::weakly_canonical(inner).string() + "/", b = fs::weakly_canonical(outer).string() + "/";
  return a.rfind(b, 0) == 0;
}

// config.json: the model section with every default resolved (a reader needs no defaults of its
// own), the tokenizer facts, and where the weights came from.
nlohmann::json export_config(const CheckpointModel& ck, const nn::ModelConfig& model, const data::Tokenizer& tok,
                             const std::string& dtype) {
  const nlohmann::json& config = ck.state.at("config");
  const auto eot = tok.token_to_id(data::Tokenizer::kEndOfText);
  FieldReader state(ck.state, ck.dir);
  return {{"format", "moda"},
          {"format_version", kExportFormatVersion},
          {"program_version", program_version()},
          {"dtype", dtype},
          {"model", nn::model_config_to_json(model)},
          {"seq_len", config.at("data").value("seq_len", int64_t(0))},  // the training length; eval's default
          {"tokenizer",
           {{"file", "tokenizer.json"},
            {"vocab_size", tok.vocab_size()},  // <= model.vocab_size (the embedding may be padded)
            {"eot_token", data::Tokenizer::kEndOfText},
            {"eot_id", eot ? nlohmann::json(*eot) : nlohmann::json(nullptr)}}},
          {"source",
           {{"checkpoint", fs::absolute(ck.dir).string()},
            {"step", state.require<int64_t>("step")},
            {"tokens", state.require<int64_t>("tokens")}}}};
}

}  // namespace

static int run_export(const std::vector<std::string>& argv) {
  Args args(argv, {"checkpoint", "tokenizer", "out", "dtype"}, {"force"});
  const std::string from = args.get("checkpoint"), tokenizer_path = args.get("tokenizer"), out = args.get("out");
  const std::string dtype_name = args.get_or("dtype", "f32");
  MODA_USAGE_CHECK(dtype_name == "f32" || dtype_name == "bf16", "--dtype must be f32 or bf16, got '", dtype_name, "'");
  const DType dtype = dtype_name == "bf16" ? DType::BF16 : DType::F32;
  const bool force = args.has("force");

  MODA_CHECK(!is_within(from, out), "--out '", out, "' holds the checkpoint '", from,
             "'; replacing it would delete what is being exported");
  std::error_code ec;
  const bool out_exists = fs::exists(out, ec);
  MODA_CHECK(!out_exists || fs::is_directory(out, ec), "--out '", out, "' exists and is not a folder");
  const bool out_empty = !out_exists || fs::is_empty(out, ec);
  MODA_CHECK(out_empty || force, "--out '", out, "' is a folder that is not empty; give --force to replace it");

  // The one way to read a trained model (apps/checkpoint_model.h): load_checkpoint consolidates a
  // sharded checkpoint in memory (the path `checkpoint consolidate` takes) and verifies every
  // file's SHA-256; loading into a model checks every name and shape against the config, and
  // state_dict() then lists the tensors in the documented order (docs/model.md, "Parameters").
  CheckpointModel ck = load_checkpoint_model(from, Device::cpu(), /*verify=*/true);
  const nn::ModelConfig& model_cfg = ck.model->config();
  const data::Tokenizer tok = data::Tokenizer::load(tokenizer_path);
  MODA_CHECK(static_cast<int64_t>(tok.vocab_size()) <= model_cfg.vocab_size, "tokenizer '", tokenizer_path, "' has ",
             tok.vocab_size(), " ids but the model's vocabulary is ", model_cfg.vocab_size,
             ": it is not the tokenizer this model was trained with");
  const nn::LanguageModel& model = *ck.model;
  NamedTensors tensors;
  for (const auto& [name, t] : model.state_dict()) tensors.emplace_back(name, t.to(dtype));

  // Everything is written into a temporary folder beside DIR, then renamed onto it: a reader (or
  // a crash) sees the old DIR or the complete new one.
  const fs::path target = fs::absolute(out).lexically_normal();
  const fs::path parent = target.parent_path();
  const std::string pid = std::to_string(::getpid());
  const fs::path tmp = parent / (target.filename().string() + ".tmp." + pid);
  const fs::path old = parent / (target.filename().string() + ".old." + pid);
  try {
    fs::create_directories(parent);
    fs::remove_all(tmp);
    MODA_CHECK(fs::create_directory(tmp, ec) && !ec, "cannot create the folder '", tmp.string(), "': ", ec.message());
    save_safetensors((tmp / "model.safetensors").string(), tensors, {{"format", "pt"}, {"moda_format", "moda"}});
    write_file_atomically((tmp / "config.json").string(),
                          [&](std::ostream& o) { o << export_config(ck, model_cfg, tok, dtype_name).dump(2) << "\n"; });
    const std::string tokenizer_text = read_whole_file(tokenizer_path);
    write_file_atomically((tmp / "tokenizer.json").string(), [&](std::ostream& o) { o << tokenizer_text; });
    if (out_empty) {
      rename_atomically(tmp.string(), target.string());  // rename(2) replaces an empty folder
    } else {
      rename_atomically(target.string(), old.string());
      rename_atomically(tmp.string(), target.string());
      fs::remove_all(old);
    }
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  const int64_t step = FieldReader(ck.state, ck.dir).require<int64_t>("step");
  std::printf("exported %s (step %lld) to %s: model.safetensors (%zu tensors, %s), config.json, tokenizer.json\n",
              ck.dir.c_str(), static_cast<long long>(step), target.c_str(), tensors.size(), dtype_name.c_str());
  return 0;
}

constexpr const char* kExportUsage =
    R"(usage: moda checkpoint export --checkpoint X --tokenizer FILE --out DIR [--dtype f32|bf16] [--force]
  Writes checkpoint X (one rank's or sharded over any number of ranks) as a folder other
  frameworks read (docs/interop.md): DIR/model.safetensors (the model's state-dict names of
  docs/model.md), DIR/config.json (the resolved model config, "format": "moda", the tokenizer's
  facts, the source step) and DIR/tokenizer.json (a copy of FILE). tools/moda_torch.py loads it in
  PyTorch. Every file of X is verified first; DIR is written as a temporary folder and renamed.
  --checkpoint X      a checkpoint folder or a run folder (its latest checkpoint)
  --tokenizer FILE    the tokenizer.json the run's shards were encoded with
  --out DIR           the folder to write; must not exist or be empty unless --force
  --dtype D           f32 (default) or bf16
  --force             replace a non-empty DIR
)";

MODA_COMMAND("checkpoint export", "weights + config + tokenizer for PyTorch: --checkpoint X --tokenizer F --out DIR",
             kExportUsage, run_export);

}  // namespace moda::app
