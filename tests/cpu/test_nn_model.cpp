// The MoDA language model on the CPU: parameter counts against the analytic formula, state-dict
// names, flat parameter groups, a whole-model gradient check for every variant and norm placement,
// and the forward pass against a naive implementation that concatenates depth K,V explicitly.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/graph.h"
#include "autograd/ops.h"
#include "nn/language_model.h"
#include "nn/optim.h"
#include "tests/compare.h"

using namespace moda;
using moda::test::rel_l2;
using namespace moda::nn;

namespace {

const Variant kVariants[] = {Variant::Sequence, Variant::DepthKV, Variant::DepthKVFFN, Variant::DepthKVFFNAttn};
const NormPlacement kNorms[] = {NormPlacement::Pre, NormPlacement::Post, NormPlacement::Reordered};

// The brief's tiny model: 2 layers, width 8, 2 heads, 1 KV head, vocab 11.
ModelConfig tiny(Variant v, NormPlacement n, int64_t layers = 2) {
  ModelConfig c;
  c.vocab_size = 11;
  c.d_model = 8;
  c.n_layers = layers;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.ffn_hidden = 12;
  c.variant = v;
  c.norm = n;
  c.qk_norm = true;
  c.bias = true;
  c.depth_kv_bias = true;
  c.max_seq_len = 16;
  c.init_std = 0.4;  // large enough that every path carries a visible gradient
  c.validate();
  return c;
}

Tensor ids_tensor(std::vector<int64_t> v, int64_t B, int64_t T) { return Tensor::from_ints(v, {B, T}); }

// ---- naive reference -------------------------------------------------------------------------

struct KV {
  Tensor k, v;  // [B, T, Hk, d]
};

// Softmax over [causal sequence keys | every depth entry of the same token], plain loops.
Tensor naive_moda(const Tensor& q, const KV& seq, const std::vector<KV>& depth) {
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), d = q.size(3), Hk = seq.k.size(2), G = Hq / Hk;
  auto Q = q.to_double_vector(), K = seq.k.to_double_vector(), V = seq.v.to_double_vector();
  std::vector<std::vector<double>> DK, DV;
  for (auto& e : depth) DK.push_back(e.k.to_double_vector()), DV.push_back(e.v.to_double_vector());
  auto at = [&](int64_t b, int64_t t, int64_t h) { return ((b * T + t) * Hk + h) * d; };
  std::vector<double> out(Q.size(), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < Hq; ++h) {
        const double* qr = &Q[((b * T + t) * Hq + h) * d];
        std::vector<double> s;
        std::vector<const double*> vals;
        auto score = [&](const double* k) {
          double acc = 0;
          for (int64_t c = 0; c < d; ++c) acc += qr[c] * k[c];
          return acc / std::sqrt(double(d));
        };
        for (int64_t j = 0; j <= t; ++j) s.push_back(score(&K[at(b, j, h / G)])), vals.push_back(&V[at(b, j, h / G)]);
        for (size_t e = 0; e < DK.size(); ++e)
          s.push_back(score(&DK[e][at(b, t, h / G)])), vals.push_back(&DV[e][at(b, t, h / G)]);
        double m = *std::max_element(s.begin(), s.end()), z = 0;
        for (auto& x : s) z += (x = std::exp(x - m));
        for (size_t j = 0; j < s.size(); ++j)
          for (int64_t c = 0; c < d; ++c) out[((b * T + t) * Hq + h) * d + c] += s[j] / z * vals[j][c];
      }
  return Tensor::from_vector(out, q.shape(), q.dtype());
}

// The model's math written out layer by layer from its state dict, with the depth entries kept
// in an explicit list instead of the stream.
Tensor naive_logits(const ModelConfig& c, const std::map<std::string, Tensor>& w, const Tensor& ids) {
  NoGradGuard no_grad;
  const int64_t B = ids.size(0), T = ids.size(1), Hq = c.n_heads, Hk = c.n_kv_heads, d = c.head_dim;
  auto P = [&](const std::string& n) { return w.count(n) ? w.at(n) : Tensor(); };
  auto lin = [&](const Tensor& x, const std::string& n) { return ops::linear(x, P(n + ".weight"), P(n + ".bias")); };
  auto norm = [&](const Tensor& x, const std::string& n) { return ops::rms_norm(x, P(n + ".weight"), c.norm_eps); };
  auto key = [&](const Tensor& k, const std::string& blk) {
    Tensor kn = c.qk_norm ? norm(k, blk + ".attn.k_norm") : k;
    return ops::rope(kn.reshape({B, T, Hk, d}), c.rope_theta);
  };
  auto pair = [&](const Tensor& x, const std::string& n, const std::string& blk) {
    return KV{key(lin(x, n + ".k_proj"), blk), lin(x, n + ".v_proj").reshape({B, T, Hk, d})};
  };
  auto combine = [&](const Tensor& x, const Tensor& f, const std::string& n) {
    switch (c.norm) {
      case NormPlacement::Pre: return ops::add(x, f);
      case NormPlacement::Post: return norm(ops::add(x, f), n);
      default: return ops::add(x, norm(f, n));
    }
  };
  std::vector<KV> depth;
  Tensor x = ops::embedding(P("embed.weight"), ids);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string blk = "blocks." + std::to_string(l);
    const bool feeds_later = l + 1 < c.n_layers;
    Tensor h = c.norm == NormPlacement::Pre ? norm(x, blk + ".attn_norm") : x;
    Tensor q = lin(h, blk + ".attn.q_proj");
    if (c.qk_norm) q = norm(q, blk + ".attn.q_norm");
    q = ops::rope(q.reshape({B, T, Hq, d}), c.rope_theta);
    KV seq{key(lin(h, blk + ".attn.k_proj"), blk), lin(h, blk + ".attn.v_proj").reshape({B, T, Hk, d})};
    std::vector<KV> seen = c.variant == Variant::Sequence ? std::vector<KV>{} : depth;
    Tensor o = naive_moda(q, seq, seen);
    x = combine(x, lin(o.reshape({B, T, Hq * d}), blk + ".attn.o_proj"), blk + ".attn_norm");
    if (c.variant == Variant::DepthKV || c.variant == Variant::DepthKVFFN) depth.push_back(seq);
    if (c.variant == Variant::DepthKVFFNAttn && feeds_later) depth.push_back(pair(h, blk + ".attn_depth", blk));
    h = c.norm == NormPlacement::Pre ? norm(x, blk + ".mlp_norm") : x;
    if (c.has_ffn_depth() && feeds_later) depth.push_back(pair(h, blk + ".ffn_depth", blk));
    Tensor m = lin(ops::swiglu(lin(h, blk + ".mlp.gate_up_proj")), blk + ".mlp.down_proj");
    x = combine(x, m, blk + ".mlp_norm");
  }
  x = norm(x, "final_norm");
  return ops::linear(x, c.tie_embeddings ? P("embed.weight") : P("lm_head.weight"));
}

std::map<std::string, Tensor> as_map(const NamedTensors& t) {
  std::map<std::string, Tensor> m;
  for (auto& [n, x] : t) m.emplace(n, x);
  return m;
}

}  // namespace

TEST_CASE("nn model: analytic parameter count equals the built model for every variant", "[cpu][nn]") {
  for (Variant v : kVariants)
    for (int flags = 0; flags < 8; ++flags) {
      ModelConfig c = tiny(v, NormPlacement::Pre, 3);
      c.qk_norm = flags & 1;
      c.bias = flags & 2;
      c.depth_kv_bias = !(flags & 2);
      c.tie_embeddings = !(flags & 4);
      c.depth_proj_last_layer = c.has_ffn_depth() && (flags & 1);
      LanguageModel m(c);
      auto p = count_parameters(c);
      INFO(variant_name(v) << " flags " << flags);
      CHECK(m.num_parameters() == p.total);
      int64_t embed = 0;
      for (auto& q : m.parameters())
        if (q.name == "embed.weight" || q.name == "lm_head.weight") embed += q.tensor.numel();
      CHECK(embed == p.embedding);
      CHECK(m.param_groups().size() == size_t(c.n_layers + 2));
      int64_t in_groups = 0;
      for (auto& g : m.param_groups())
        for (auto& q : g.params) in_groups += q.tensor.numel();
      CHECK(in_groups == p.total);
    }
}

TEST_CASE("nn model: state-dict names", "[cpu][nn]") {
  ModelConfig c = tiny(Variant::DepthKVFFNAttn, NormPlacement::Post);
  c.tie_embeddings = false;
  c.bias = false;
  c.depth_kv_bias = false;
  LanguageModel m(c);
  std::vector<std::string> names;
  for (auto& [n, t] : m.state_dict()) names.push_back(n);
  std::vector<std::string> block0 = {
      "blocks.0.attn_norm.weight",        "blocks.0.attn.q_proj.weight",       "blocks.0.attn.k_proj.weight",
      "blocks.0.attn.v_proj.weight",      "blocks.0.attn.o_proj.weight",       "blocks.0.attn.q_norm.weight",
      "blocks.0.attn.k_norm.weight",      "blocks.0.attn_depth.k_proj.weight", "blocks.0.attn_depth.v_proj.weight",
      "blocks.0.mlp_norm.weight",         "blocks.0.mlp.gate_up_proj.weight",  "blocks.0.mlp.down_proj.weight",
      "blocks.0.ffn_depth.k_proj.weight", "blocks.0.ffn_depth.v_proj.weight"};
  std::vector<std::string> block1 = {
      "blocks.1.attn_norm.weight",    "blocks.1.attn.q_proj.weight", "blocks.1.attn.k_proj.weight",
      "blocks.1.attn.v_proj.weight",  "blocks.1.attn.o_proj.weight", "blocks.1.attn.q_norm.weight",
      "blocks.1.attn.k_norm.weight",  "blocks.1.mlp_norm.weight",    "blocks.1.mlp.gate_up_proj.weight",
      "blocks.1.mlp.down_proj.weight"};  // the last layer builds no depth projections
  std::vector<std::string> want = {"embed.weight"};
  want.insert(want.end(), block0.begin(), block0.end());
  want.insert(want.end(), block1.begin(), block1.end());
  want.push_back("final_norm.weight");
  want.push_back("lm_head.weight");
  CHECK(names == want);

  auto sd = as_map(m.state_dict());
  CHECK(sd.at("blocks.0.attn.k_proj.weight").shape() == Shape{4, 8});
  CHECK(sd.at("blocks.0.mlp.gate_up_proj.weight").shape() == Shape{24, 8});
  CHECK(sd.at("lm_head.weight").shape() == Shape{11, 8});
  // Norm weights and biases carry no weight decay; everything else does.
  c.bias = true;
  LanguageModel mb(c);
  for (auto& p : mb.parameters()) {
    bool no_decay = p.name.find("norm.weight") != std::string::npos || p.name.find(".bias") != std::string::npos;
    INFO(p.name);
    CHECK(p.decay == !no_decay);
  }
  ModelConfig tied = tiny(Variant::Sequence, NormPlacement::Pre);
  for (auto& [n, t] : LanguageModel(tied).state_dict()) CHECK(n != "lm_head.weight");
}

// Micro-batch accumulation in a wider dtype than the parameters (the trainer's fp32 gradient for
// bf16 models; here f64 for f32 ones, the same code path on the CPU): .grad views the wider
// buffer and backward passes add into it.
TEST_CASE("nn model: a group's gradient may be wider than its parameters and accumulates in it", "[cpu][nn]") {
  ModelConfig c = tiny(Variant::DepthKVFFN, NormPlacement::Post);
  LanguageModel m(c, {7, Device::cpu(), DType::F32});
  Tensor ids = ids_tensor({1, 2, 3, 4, 5, 6, 7, 8}, 2, 4);
  Tensor tgt = ids_tensor({2, 3, 4, 5, 6, 7, 8, -1}, 2, 4);
  m.forward(ids, tgt).backward();
  std::map<std::string, std::vector<double>> ref;
  for (auto& p : m.parameters()) ref[p.name] = p.tensor.grad().to_double_vector();
  for (auto& g : m.param_groups()) g.grad_dtype = DType::F64;
  m.zero_grad();
  for (int micro = 0; micro < 3; ++micro) m.forward(ids, tgt).backward();
  for (auto& g : m.param_groups()) {
    REQUIRE(g.grad.dtype() == DType::F64);
    for (size_t i = 0; i < g.params.size(); ++i) {
      INFO(g.params[i].name);
      const Tensor grad = g.params[i].tensor.grad();
      CHECK(grad.dtype() == DType::F64);
      CHECK(grad.same_storage(g.grad));
      auto want = ref[g.params[i].name];
      for (auto& e : want) e *= 3;
      CHECK(rel_l2(grad.to_double_vector(), want) < 1e-6);
    }
  }
  // The optimiser takes the wider gradient (it reads it in its own dtype).
  std::vector<OptimParam> params;
  for (auto& p : m.parameters()) params.push_back({p.name, p.tensor, p.decay});
  AdamW opt(params, AdamWParams{});
  const auto before = m.param_groups()[1].params[0].tensor.to_double_vector();
  opt.step(1e-3, 1.0);
  CHECK(rel_l2(m.param_groups()[1].params[0].tensor.to_double_vector(), before) > 0);
}

TEST_CASE("nn model: parameters live in one flat buffer per group, gradients too", "[cpu][nn]") {
  ModelConfig c = tiny(Variant::DepthKVFFN, NormPlacement::Pre);
  LanguageModel m(c, {7, Device::cpu(), DType::F64});
  auto& groups = m.param_groups();
  REQUIRE(groups.size() == 4);
  CHECK(groups[0].name == "embed");
  CHECK(groups[1].name == "blocks.0");
  CHECK(groups[3].name == "head");
  std::vector<std::string> order;
  for (auto& g : groups) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Tensor& p = g.params[i].tensor;
      CHECK(p.same_storage(g.flat));
      CHECK(p.is_contiguous());
      CHECK(p.offset() == g.flat.offset() + g.offsets[i]);
      CHECK(g.offsets[i] % kParamAlignment == 0);
      order.push_back(g.params[i].name);
    }
  }
  std::vector<std::string> model_order;
  for (auto& p : m.parameters()) model_order.push_back(p.name);
  CHECK(order == model_order);

  Tensor ids = ids_tensor({1, 2, 3, 4, 5, 6, 7, 8}, 2, 4);
  Tensor tgt = ids_tensor({2, 3, 4, 5, 6, 7, 8, -1}, 2, 4);
  // Reference gradients: plain leaf accumulation (no flat buffers).
  m.forward(ids, tgt).backward();
  std::map<std::string, std::vector<double>> ref;
  for (auto& p : m.parameters()) ref[p.name] = p.tensor.grad().to_double_vector();
  // Flat: zero_grad points each .grad at its view; two backward passes accumulate in place.
  m.zero_grad();
  for (auto& g : groups) REQUIRE(g.grad.defined());
  m.forward(ids, tgt).backward();
  m.forward(ids, tgt).backward();
  for (auto& g : groups)
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Tensor& p = g.params[i].tensor;
      Tensor grad = p.grad();
      CHECK(grad.same_storage(g.grad));
      CHECK(grad.offset() == g.grad.offset() + g.offsets[i]);
      auto got = grad.to_double_vector();
      auto want = ref[g.params[i].name];
      for (auto& e : want) e *= 2;
      INFO(g.params[i].name);
      CHECK(rel_l2(got, want) < 1e-12);
    }
  // zero_grad clears the flat buffer and keeps the views.
  m.zero_grad();
  for (auto& g : groups)
    for (double e : g.grad.to_double_vector()) REQUIRE(e == 0.0);

  // to(): the same handles, new buffers, values kept (rounded to f32).
  Tensor embed = groups[0].params[0].tensor;
  auto before = embed.to_double_vector();
  m.to(Device::cpu(), DType::F32);
  CHECK(embed.dtype() == DType::F32);
  CHECK(embed.same_storage(groups[0].flat));
  CHECK(rel_l2(embed.to_double_vector(), before) < 1e-7);
  CHECK_FALSE(embed.grad().defined());
  CHECK(m.forward(ids, tgt).dtype() == DType::F32);
}

TEST_CASE("nn model: initialisation depends on (seed, name) only, state dicts round-trip", "[cpu][nn]") {
  ModelConfig c2 = tiny(Variant::DepthKV, NormPlacement::Pre, 2), c3 = tiny(Variant::DepthKVFFN, NormPlacement::Pre, 3);
  LanguageModel a(c2, {42}), b(c3, {42}), other(c2, {43});
  auto sa = as_map(a.state_dict()), sb = as_map(b.state_dict()), so = as_map(other.state_dict());
  for (auto& [name, t] : sa) {
    INFO(name);
    CHECK(t.to_double_vector() == sb.at(name).to_double_vector());  // same name, same values
  }
  CHECK(sa.at("embed.weight").to_double_vector() != so.at("embed.weight").to_double_vector());
  CHECK(sa.at("final_norm.weight").to_double_vector() == std::vector<double>(8, 1.0));
  CHECK(sa.at("blocks.0.attn.q_proj.bias").to_double_vector() == std::vector<double>(8, 0.0));
  double sq = 0;
  auto e = sa.at("embed.weight").to_double_vector();
  for (double x : e) sq += x * x;
  CHECK(std::sqrt(sq / e.size()) == Approx(0.4).epsilon(0.15));

  other.load_state_dict(a.state_dict());
  Tensor ids = ids_tensor({1, 2, 3, 4, 5}, 1, 5);
  CHECK(other.logits(ids).to_double_vector() == a.logits(ids).to_double_vector());

  auto sd = a.state_dict();
  using Catch::Contains;
  auto missing = sd;
  missing.pop_back();
  CHECK_THROWS_WITH(other.load_state_dict(missing), Contains("missing parameter 'final_norm.weight'"));
  auto extra = sd;
  extra.emplace_back("blocks.9.attn.q_proj.weight", Tensor::zeros({8, 8}));
  CHECK_THROWS_WITH(other.load_state_dict(extra), Contains("unexpected tensor 'blocks.9.attn.q_proj.weight'"));
  auto wrong = as_map(sd);
  wrong["embed.weight"] = Tensor::zeros({12, 8});
  CHECK_THROWS_WITH(other.load_state_dict(wrong), Contains("'embed.weight' has shape [12, 8]"));
}

TEST_CASE("nn model: forward equals a naive implementation with explicit depth K,V", "[cpu][nn]") {
  Tensor ids = ids_tensor({3, 1, 4, 1, 5, 9, 2, 6, 5, 3}, 2, 5);
  for (Variant v : kVariants)
    for (NormPlacement n : kNorms)
      for (bool tie : {true, false}) {
        ModelConfig c = tiny(v, n, 3);
        c.tie_embeddings = tie;
        LanguageModel m(c, {5, Device::cpu(), DType::F64});
        Tensor got = m.logits(ids);
        Tensor want = naive_logits(c, as_map(m.state_dict()), ids);
        INFO(variant_name(v) << " " << norm_name(n) << " tied " << tie);
        REQUIRE(got.shape() == Shape{2, 5, 11});
        CHECK(rel_l2(got.to_double_vector(), want.to_double_vector()) < 1e-12);
      }
  // The variants differ: depth entries change the output.
  ModelConfig cs = tiny(Variant::Sequence, NormPlacement::Pre, 3), cd = tiny(Variant::DepthKV, NormPlacement::Pre, 3);
  LanguageModel ms(cs, {5, Device::cpu(), DType::F64}), md(cd, {5, Device::cpu(), DType::F64});
  CHECK(rel_l2(ms.logits(ids).to_double_vector(), md.logits(ids).to_double_vector()) > 1e-3);
}

TEST_CASE("nn model: whole-model gradient check, every variant and norm placement", "[cpu][nn]") {
  Tensor ids = ids_tensor({3, 1, 4, 1, 5, 9, 2, 6, 5, 3}, 2, 5);
  Tensor tgt = ids_tensor({1, 4, 1, 5, 9, 2, 6, 5, 3, -1}, 2, 5);
  for (Variant v : kVariants)
    for (NormPlacement n : kNorms) {
      ModelConfig c = tiny(v, n);
      c.tie_embeddings = v != Variant::DepthKV;  // cover the untied head once
      LanguageModel m(c, {11, Device::cpu(), DType::F64});
      std::vector<Tensor> params;
      for (auto& p : m.parameters()) params.push_back(p.tensor);
      auto f = [&](const std::vector<Tensor>&) { return m.forward(ids, tgt); };
      auto r = gradcheck(f, params, 1e-6, 1e-7, 1e-5);
      INFO(variant_name(v) << " " << norm_name(n) << ": " << r.report);
      CHECK(r.ok);
      CHECK(m.forward(ids, tgt).dtype() == DType::F64);
    }
}

TEST_CASE("nn model: loss at a small init is close to log(vocab), bad inputs are reported", "[cpu][nn]") {
  ModelConfig c = tiny(Variant::DepthKVFFN, NormPlacement::Post);
  c.init_std = 0.02;
  LanguageModel m(c);
  Tensor ids = ids_tensor({1, 2, 3, 4, 5, 6}, 2, 3);
  // Targets unrelated to the inputs (tied embeddings make a token predict itself a little).
  double loss = m.forward(ids, ids_tensor({7, 9, 10, 0, 8, 6}, 2, 3)).item();
  CHECK(loss == Approx(std::log(11.0)).epsilon(0.05));
  using Catch::Contains;
  CHECK_THROWS_WITH(m.forward(Tensor::zeros({2, 3}), ids), Contains("ids must be i32/i64"));
  CHECK_THROWS_WITH(m.forward(ids, ids_tensor({1, 2, 3}, 1, 3)), Contains("targets"));
  CHECK_THROWS_WITH(m.logits(ids_tensor(std::vector<int64_t>(17, 1), 1, 17)), Contains("max_seq_len"));
}

TEST_CASE("nn model: activation checkpointing gives the same loss and gradients, every variant and norm", "[cpu][nn]") {
  Tensor ids = ids_tensor({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2}, 2, 6);
  Tensor tgt = ids_tensor({2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, -1}, 2, 6);
  for (Variant v : kVariants)
    for (NormPlacement n : kNorms)
      for (DType dtype : {DType::F64, DType::F32}) {
        INFO(variant_name(v) << " / " << norm_name(n) << " / " << dtype_name(dtype));
        // Three layers: the middle block reads depth slots and has its own read by the last.
        LanguageModel plain(tiny(v, n, 3), {5, Device::cpu(), dtype});
        LanguageModel ckpt(tiny(v, n, 3), {5, Device::cpu(), dtype});
        ckpt.set_activation_checkpointing(true);
        plain.zero_grad();
        ckpt.zero_grad();
        Tensor loss_plain = plain.forward(ids, tgt), loss_ckpt = ckpt.forward(ids, tgt);
        CHECK(loss_ckpt.to_double_vector() == loss_plain.to_double_vector());
        loss_plain.backward();
        loss_ckpt.backward();
        // Same values computed in the same order: equal bit for bit, not just close.
        for (size_t g = 0; g < plain.param_groups().size(); ++g) {
          INFO(plain.param_groups()[g].name);
          const auto a = plain.param_groups()[g].grad.to_double_vector();
          const auto b = ckpt.param_groups()[g].grad.to_double_vector();
          CHECK(b == a);
          CHECK(std::any_of(a.begin(), a.end(), [](double x) { return x != 0; }));
        }
      }
  // Without recording (evaluation), checkpointing is a plain forward.
  LanguageModel ckpt(tiny(Variant::DepthKVFFN, NormPlacement::Post, 3), {5, Device::cpu(), DType::F64});
  ckpt.set_activation_checkpointing(true);
  NoGradGuard no_grad;
  CHECK(!ckpt.forward(ids, tgt).requires_grad());
}
