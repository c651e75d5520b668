#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "distributed/checkpoint.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"

using namespace moda;
namespace fs = std::filesystem;

TEST_CASE("lr schedule: warm-up then cosine to the floor", "[cpu][train]") {
  LrSchedule s{3e-4, 3e-5, 100, 1100};
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
  AdamW opt({{"w", w, true}, {"norm", n, false}}, hp);
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
