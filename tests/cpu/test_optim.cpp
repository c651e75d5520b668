#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "distributed/checkpoint.h"
#include "nn/language_model.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"

using namespace moda;
namespace fs = std::filesystem;

TEST_CASE("lr schedule: warm-up then cosine to the floor", "[cpu][train]") {
  nn::LrSchedule s{3e-4, 3e-5, 100, 1100};
  REQUIRE(s.at(1) == Approx(3e-6));
  REQUIRE(s.at(100) == Approx(3e-4));
  REQUIRE(s.at(600) == Approx(3e-5 + 0.5 * (3e-4 - 3e-5)));
  REQUIRE(s.at(1100) == Approx(3e-5));
  REQUIRE(s.at(5000) == Approx(3e-5));
  for (int64_t t = 101; t < 1100; ++t) REQUIRE(s.at(t + 1) <= s.at(t));
}

TEST_CASE("AdamW: matches the closed form of the first steps, no decay on flagged params", "[cpu][train]") {
  Tensor w = Tensor::from_vector(std::vector<float>{1.0f, -2.0f}, {2}).set_requires_grad(true);
  Tensor n = Tensor::from_vector(std::vector<float>{1.0f}, {1}).set_requires_grad(true);
  AdamWParams hp;
  hp.weight_decay = 0.1;
  nn::AdamW opt({{"w", w, true}, {"norm", n, false}}, hp);
  w.set_grad(Tensor::from_vector(std::vector<float>{0.5f, -0.25f}, {2}));
  n.set_grad(Tensor::from_vector(std::vector<float>{2.0f}, {1}));
  REQUIRE(opt.grad_norm() == Approx(std::sqrt(0.25 + 0.0625 + 4.0)));
  opt.step(0.01);
  // Step 1: m_hat = g, v_hat = g^2 -> update = lr * g/|g| (+ eps); decay multiplies by (1 - lr*wd) first.
  auto wv = w.to_float_vector();
  REQUIRE(wv[0] == Approx(1.0 * (1 - 0.001) - 0.01).epsilon(1e-5));
  REQUIRE(wv[1] == Approx(-2.0 * (1 - 0.001) + 0.01).epsilon(1e-5));
  REQUIRE(n.to_float_vector()[0] == Approx(1.0 - 0.01).epsilon(1e-5));
  REQUIRE(opt.steps_taken() == 1);
}

namespace {

// The documented rule (docs/model.md, docs/training.md): norm weights and biases get no weight
// decay, every other parameter (linear weights, embeddings, lm_head, depth projections) does.
// Decided from the state-dict name alone, independently of the flags the model sets.
bool documented_decay(const std::string& name) {
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return !ends_with(".bias") && !ends_with("norm.weight");
}

}  // namespace

TEST_CASE("AdamW on a model: matrices and embeddings decay by lr*wd, norm weights and biases do not", "[cpu][train]") {
  nn::ModelConfig c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.n_layers = 3;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.ffn_hidden = 24;
  c.variant = nn::Variant::DepthKVFFNAttn;  // every kind of parameter: depth projections too
  c.qk_norm = true;
  c.bias = true;
  c.depth_kv_bias = true;
  c.tie_embeddings = false;
  c.validate();
  nn::LanguageModel model(c, nn::ModelInit{7, Device::cpu(), DType::F32});
  // Norm weights start at 1 and biases at 0: give every parameter non-zero values so that decay
  // (a multiplication) is visible on each of them.
  uint64_t seed = 100;
  for (const auto& p : model.parameters()) {
    Tensor t = p.tensor;
    t.copy_(Tensor::uniform(t.shape(), seed++, 0.5, 1.5));
  }

  // The optimiser is built as the trainer builds it: from the model's own decay flags.
  std::vector<nn::OptimParam> params;
  std::map<std::string, std::vector<float>> before;
  int decayed = 0, kept = 0;
  for (const auto& p : model.parameters()) {
    params.push_back({p.name, p.tensor, p.decay});
    before[p.name] = p.tensor.to_float_vector();
    (documented_decay(p.name) ? decayed : kept)++;
  }
  REQUIRE(decayed >= 10);
  REQUIRE(kept >= 10);  // norms (incl. q/k norms) and biases (incl. depth projections)
  AdamWParams hp;
  hp.weight_decay = 0.1;
  nn::AdamW opt(params, hp);
  // With zero gradients Adam's update is exactly 0 (m = v = 0), so one step at lr leaves
  // p * (1 - lr * wd) on decayed parameters and p unchanged on the others.
  model.zero_grad();
  const double lr = 0.05;
  opt.step(lr);
  for (const auto& p : model.parameters()) {
    INFO(p.name);
    const auto now = p.tensor.to_float_vector();
    const auto& was = before.at(p.name);
    const double factor = documented_decay(p.name) ? 1.0 - lr * hp.weight_decay : 1.0;
    for (size_t i = 0; i < now.size(); ++i) REQUIRE(now[i] == Approx(was[i] * factor).epsilon(1e-6));
  }
}

TEST_CASE("AdamW: f64 parameters step in double, clipping scales the gradients", "[cpu][train]") {
  Tensor w = Tensor::from_vector(std::vector<double>{3.0, -1.0}, {2}, DType::F64).set_requires_grad(true);
  nn::AdamW opt({{"w", w, false}}, AdamWParams{});
  w.set_grad(Tensor::from_vector(std::vector<double>{3.0, 4.0}, {2}, DType::F64));
  const double norm = opt.grad_norm();
  REQUIRE(norm == Approx(5.0).epsilon(1e-12));  // sqrt(9 + 16)
  // Clipping to 1: the factor is 1 / (5 + 1e-6); a norm below the limit is left alone.
  const double clip = nn::clip_coefficient(norm, 1.0);
  REQUIRE(clip == Approx(1.0 / (5.0 + 1e-6)).epsilon(1e-7));
  REQUIRE(nn::clip_coefficient(0.5, 1.0) == 1.0f);
  // Step 1 with lr 0.1: m_hat = clip*g, v_hat = (clip*g)^2 -> every element moves by lr * sign(g).
  opt.step(0.1, clip);
  std::vector<double> got(2);
  std::copy_n(w.data<double>(), 2, got.begin());
  REQUIRE(got[0] == Approx(3.0 - 0.1).epsilon(1e-7));  // eps 1e-8 against |g| ~ 0.6
  REQUIRE(got[1] == Approx(-1.0 - 0.1).epsilon(1e-7));
}

TEST_CASE("AdamW: parameters outside the kernels' dtypes are rejected when the optimiser is built", "[cpu][train]") {
  // CPU kernels take f32 or f64: a bf16 CPU parameter must fail here, naming it, not at step time.
  Tensor w = Tensor::zeros({2}, DType::BF16);
  REQUIRE_THROWS_WITH(nn::AdamW({{"blocks.0.w", w, true}}, AdamWParams{}), Catch::Contains("blocks.0.w"));
}

TEST_CASE("checkpoints: save, load latest, prune, and survive an interrupted write", "[cpu][train]") {
  fs::path run = fs::temp_directory_path() / ("moda_ckpt_" + std::to_string(::getpid()));
  fs::remove_all(run);
  Tensor w = Tensor::randn({3, 4}, 1);
  Checkpoint c{{{"w", w}}, {{"w.exp_avg", Tensor::zeros({3, 4})}}, {{"step", 5}}};
  save_checkpoint(run.string(), 5, c, 2);
  c.state["step"] = 6;
  save_checkpoint(run.string(), 6, c, 2);
  c.state["step"] = 7;
  save_checkpoint(run.string(), 7, c, 2);
  REQUIRE_FALSE(fs::exists(run / "checkpoints" / "step-5"));  // pruned to the newest 2
  auto loaded = load_checkpoint(run.string());
  REQUIRE(loaded.state["step"] == 7);
  REQUIRE(loaded.model.tensors.at("w").to_float_vector() == w.to_float_vector());
  // A crash while writing step 8 (simulated by a leftover temporary folder and a failing save)
  // leaves step 7 as the latest loadable checkpoint.
  fs::create_directories(run / "checkpoints" / "step-8.tmp.999");
  std::ofstream(run / "checkpoints" / "step-8.tmp.999" / "model.safetensors") << "half";
  Checkpoint bad{{{"w", w}, {"w", w}}, {}, {}};  // duplicate name -> save throws midway
  REQUIRE_THROWS(save_checkpoint(run.string(), 8, bad, 2));
  REQUIRE_FALSE(fs::exists(run / "checkpoints" / "step-8"));
  REQUIRE(load_checkpoint(run.string()).state["step"] == 7);
  REQUIRE_THROWS_WITH(load_checkpoint((run / "nope").string()), Catch::Contains("does not exist"));
  fs::remove_all(run);
}
