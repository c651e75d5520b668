// The autograd half of Tensor's interface (declared in core/tensor.h, implemented here so that
// core/ does not depend on the graph).
#include "autograd/function.h"
#include "autograd/graph.h"
#include "core/error.h"

namespace moda {

Tensor& Tensor::set_requires_grad(bool r) {
  MODA_CHECK(is_leaf(), "set_requires_grad: ", describe(), " is not a leaf (it was computed by ",
             impl_->autograd.grad_fn->name, ")");
  MODA_CHECK(!r || is_floating(dtype()), "set_requires_grad: ", describe(), " is not floating point");
  impl_->autograd.requires_grad = r;
  return *this;
}

Tensor Tensor::grad() const { return impl_->autograd.grad ? Tensor(impl_->autograd.grad) : Tensor(); }

void Tensor::set_grad(const Tensor& g) {
  if (g.defined()) check_same_shape("set_grad", *this, g);
  impl_->autograd.grad = g.defined() ? g.impl_ptr() : nullptr;
}

void Tensor::zero_grad() { impl_->autograd.grad.reset(); }

void Tensor::backward() const {
  MODA_CHECK(numel() == 1, "backward: ", describe(), " is not a scalar; pass a seed gradient");
  backward(Tensor::full(shape(), 1.0, dtype(), device()));
}

void Tensor::backward(const Tensor& seed) const { run_backward({*this}, {seed}); }

void Tensor::register_grad_ready_hook(std::function<void(Tensor&)> hook) {
  MODA_CHECK(is_leaf() && requires_grad(), "register_grad_ready_hook: ", describe(),
             " is not a leaf that requires grad");
  impl_->autograd.grad_ready_hooks.push_back(std::move(hook));
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  impl->dtype = impl_->dtype;
  impl->name = impl_->name;
  return Tensor(impl);
}

}  // namespace moda
