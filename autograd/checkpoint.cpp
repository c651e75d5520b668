#include "autograd/checkpoint.h"

#include "autograd/function.h"
#include "autograd/graph.h"

namespace moda {

Tensor checkpoint(CheckpointedFn fn, const Tensor& x, const std::vector<Tensor>& reads) {
  std::vector<Tensor> side_roots;
  // Nothing to save for (evaluation, decoding), or no input the graph continues through: plain.
  if (!any_requires_grad({x})) return fn(x, side_roots);
  Tensor y;
  {
    NoGradGuard no_grad;
    y = fn(x.detach(), side_roots);
  }
  std::vector<Tensor> inputs{x};
  for (const Tensor& r : reads) inputs.push_back(r.detach());  // storage only: no edge, no gradient
  const size_t n = inputs.size();
  auto recompute = [fn = std::move(fn), saved = x.detach(), n](const std::vector<Tensor>& grads) {
    EnableGradGuard record;
    Tensor input = saved.detach();
    input.set_requires_grad(true);
    std::vector<Tensor> roots;
    Tensor again = fn(input, roots);
    std::vector<Tensor> seeds(roots.size());  // none: their gradients come through side state
    roots.insert(roots.begin(), again);
    seeds.insert(seeds.begin(), grads[0]);
    run_backward(roots, seeds);
    std::vector<Tensor> out(n);
    out[0] = input.grad();
    return out;
  };
  return record_op("checkpoint", inputs, {y}, std::move(recompute))[0];
}

}  // namespace moda
