#include "nn/module.h"

#include "core/error.h"

namespace moda::nn {

static Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

Tensor Module::register_parameter(const std::string& name, const Shape& shape, Init init, bool decay) {
  for (const auto& p : params_) MODA_CHECK(p.name != name, "register_parameter: '", name, "' registered twice");
  // A handle without storage: ParamGroup::bind gives it its place in a flat buffer.
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = DType::F32;
  impl->name = name;
  Tensor t(impl);
  t.set_requires_grad(true);
  params_.push_back({name, t, decay, init});
  return t;
}

std::vector<Parameter> Module::parameters(const std::string& prefix) const {
  std::vector<Parameter> out;
  for (const auto& p : params_) {
    Parameter q = p;
    q.name = prefix + p.name;
    out.push_back(q);
  }
  for (const auto& [name, child] : children_) {
    auto sub = child->parameters(prefix + name + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.tensor.numel();
  return n;
}

// --- groups -------------------------------------------------------------------------------------

static int64_t align_up(int64_t n) { return (n + kParamAlignment - 1) / kParamAlignment * kParamAlignment; }

// Points a parameter handle at `numel` elements of `flat` starting at `offset` (in place, so every
// copy of the handle sees the new storage).
static void point_at(const Tensor& param, const Tensor& flat, int64_t offset) {
  TensorImpl* impl = param.impl();
  impl->storage = flat.storage();
  impl->offset = flat.offset() + offset;
  impl->strides = contiguous_strides(impl->shape);
  impl->dtype = flat.dtype();
  impl->autograd.grad.reset();
}

void ParamGroup::bind(Device device, DType dtype) {
  offsets.clear();
  int64_t total = 0;
  for (const auto& p : params) {
    offsets.push_back(total);
    total = align_up(total + p.tensor.numel());
  }
  flat = Tensor::zeros({total}, dtype, device);
  flat.set_name(name + ".flat");
  grad = Tensor();
  for (size_t i = 0; i < params.size(); ++i) {
    MODA_CHECK(params[i].tensor.is_leaf(), "ParamGroup::bind: parameter ", params[i].name, " is not a leaf");
    point_at(params[i].tensor, flat, offsets[i]);
    params[i].tensor.set_name(params[i].name);
  }
}

void ParamGroup::to(Device device, DType dtype) {
  MODA_CHECK(flat.defined(), "ParamGroup::to: group ", name, " is not bound");
  if (flat.device() == device && flat.dtype() == dtype) return;
  MODA_CHECK(is_floating(dtype), "ParamGroup::to: ", dtype_name(dtype), " is not a floating-point type");
  Tensor moved = Tensor::empty({flat.numel()}, dtype, device);
  moved.copy_(flat);
  flat = moved;
  flat.set_name(name + ".flat");
  grad = Tensor();
  for (size_t i = 0; i < params.size(); ++i) point_at(params[i].tensor, flat, offsets[i]);
}

void ParamGroup::zero_grad() {
  MODA_CHECK(flat.defined(), "ParamGroup::zero_grad: group ", name, " is not bound");
  const DType dtype = grad_dtype.value_or(flat.dtype());
  if (!grad.defined() || grad.device() != flat.device() || grad.dtype() != dtype || grad.numel() != flat.numel()) {
    grad = Tensor::zeros({flat.numel()}, dtype, flat.device());
    grad.set_name(name + ".grad");
  } else {
    grad.impl()->storage->materialize();  // sharded training frees it between steps
    grad.zero_();
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i].tensor;
    p.impl()->autograd.grad = grad.narrow(0, offsets[i], p.numel()).view(p.shape()).impl_ptr();
  }
}

ParamGroup make_param_group(const std::string& name, std::vector<Parameter> params, Device device, DType dtype) {
  ParamGroup g;
  g.name = name;
  g.params = std::move(params);
  g.bind(device, dtype);
  return g;
}

// --- init ---------------------------------------------------------------------------------------

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t parameter_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a over the name's bytes
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return splitmix64(splitmix64(seed) ^ h);
}

void init_parameter(const Parameter& p, uint64_t seed, double std) {
  Tensor t = p.tensor;
  switch (p.init) {
    case Init::Ones: t.fill_(1.0); return;
    case Init::Zeros: t.fill_(0.0); return;
    case Init::Normal:
      t.copy_(Tensor::randn(t.shape(), parameter_seed(seed, p.name), t.dtype(), t.device(), std));
      return;
  }
}

}  // namespace moda::nn
