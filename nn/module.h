#pragma once
// Modules: named parameters and children, like torch.nn.Module, plus flat parameter groups.
//
// A module declares its parameters (name, shape, how to initialise, whether weight decay applies)
// when it is constructed; they are handles without storage until the owning model binds them into
// a ParamGroup: ONE flat buffer per group (the model makes one group per transformer block), each
// parameter a contiguous view at a fixed offset. Gradients mirror it: zero_grad() zeroes one flat
// gradient buffer per group and sets every parameter's .grad to its view, so the autograd engine
// (which accumulates in place into an existing leaf gradient) writes straight into the flat buffer.
// Moving a group to another device or dtype re-points the same tensor handles at a new buffer, so
// every handle held by a layer stays valid.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace moda::nn {

enum class Init { Normal, Ones, Zeros };

struct Parameter {
  std::string name;  // full dotted name, e.g. "blocks.3.attn.q_proj.weight"
  Tensor tensor;
  bool decay = true;  // AdamW weight decay applies (false for norm weights and biases)
  Init init = Init::Normal;
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of this module and its children: own parameters first in registration order,
  // then each child's (depth first, registration order), names prefixed with `prefix`.
  std::vector<Parameter> parameters(const std::string& prefix = "") const;
  int64_t num_parameters() const;  // elements

 protected:
  // Declares a parameter; the returned handle gets its storage when the model binds its groups.
  Tensor register_parameter(const std::string& name, const Shape& shape, Init init, bool decay);
  template <typename M, typename... Args>
  M& register_module(const std::string& name, Args&&... args) {
    auto child = std::make_unique<M>(std::forward<Args>(args)...);
    M& ref = *child;
    children_.emplace_back(name, std::move(child));
    return ref;
  }

 private:
  std::vector<Parameter> params_;  // local names
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
};

// --- flat parameter groups --------------------------------------------------------------------

// Parameter offsets inside a group's buffer are rounded up to this many elements, so that every
// weight starts on a 128-byte boundary for bf16 (vector loads, cuBLASLt); the gaps stay zero.
constexpr int64_t kParamAlignment = 64;

struct ParamGroup {
  std::string name;               // "embed", "blocks.0", ..., "head"
  std::vector<Parameter> params;  // views into `flat`
  std::vector<int64_t> offsets;   // element offset of each parameter in `flat`
  Tensor flat;                    // 1-D [numel()], parameters back to back (aligned)
  Tensor grad;                    // 1-D like `flat`; undefined until the first zero_grad()
  // dtype of `grad`; unset: the flat's. Set wider (fp32 for bf16 parameters) so that gradients
  // accumulated over micro-batches are summed in it rather than in the compute dtype.
  std::optional<DType> grad_dtype;

  int64_t numel() const { return flat.defined() ? flat.numel() : 0; }
  // Allocates the flat buffer on `device` in `dtype` (zero-filled) and binds every parameter to
  // its view. Parameters keep their handles; their values are not initialised here.
  void bind(Device device, DType dtype);
  // Moves the values to a new buffer on `device` / in `dtype`; drops gradients.
  void to(Device device, DType dtype);
  // Zeroes the flat gradient buffer (allocating it on first use) and points each parameter's
  // .grad at its view of it.
  void zero_grad();
};

// Builds a group from parameters (not yet bound) and binds it.
ParamGroup make_param_group(const std::string& name, std::vector<Parameter> params, Device device, DType dtype);

// Per-parameter seed: a hash of (seed, name), so a parameter's initial values depend neither on
// the device, nor on the order of construction, nor on which other parameters exist.
uint64_t parameter_seed(uint64_t seed, const std::string& name);
// normal(0, std) / ones / zeros according to p.init, on p's device and dtype.
void init_parameter(const Parameter& p, uint64_t seed, double std);

}  // namespace moda::nn
