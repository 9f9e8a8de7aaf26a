#include "nn/optim/sgd.h"

#include "autograd/foreach.h"

namespace ag::nn {

void SGDOptions::validate() const {
  if (!(lr >= 0)) fail<ValueError>("optimizer: negative learning rate {}", lr);
  if (nesterov && (momentum <= 0 || dampening != 0))
    fail<ValueError>("SGD: nesterov needs momentum > 0 and dampening 0");
}

SGD::SGD(std::vector<Tensor> params, const SGDOptions& o) : OptimizerWith(o) {
  add_param_group(std::move(params));
}

void SGD::step() {
  NoGradGuard ng;
  ++steps_;
  for (size_t g = 0; g < param_groups().size(); ++g) step_group(g);
}

void SGD::step_group(size_t gi) {
  const Group& group = param_groups()[gi];
  const SGDOptions& o = group.options;
  const bool momentum = o.momentum != 0, l2 = o.weight_decay != 0, nesterov = o.nesterov;
  // Operands: parameter, gradient (in the parameter's dtype) and, with momentum, its buffer.
  std::vector<std::array<Tensor, 3>> items;
  std::vector<bool> first;  // the momentum buffer is set to d rather than blended into
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    Tensor grad = p.grad();
    if (!grad.defined()) continue;
    grad = grad.to(p.dtype());
    first.push_back(momentum && !has_buffer(gi, i, "momentum"));
    items.push_back({p, grad, momentum ? buffer(gi, i, "momentum", p) : grad});
  }
  foreach_update_<3>(items, {true, false, momentum}, [&]<class T>(size_t i) {
    const T lr = static_cast<T>(o.lr), wd = static_cast<T>(o.weight_decay);
    const T mu = static_cast<T>(o.momentum), keep = static_cast<T>(1 - o.dampening);
    const bool first_step = first[i];
    return [=](auto& x) {  // x: p, g, b
      using V = std::decay_t<decltype(x[0])>;
      V d = l2 ? x[1] + V(wd) * x[0] : x[1];
      if (momentum) {
        x[2] = first_step ? d : V(mu) * x[2] + V(keep) * d;
        d = nesterov ? d + V(mu) * x[2] : x[2];
      }
      x[0] = x[0] - V(lr) * d;
    };
  });
}

}  // namespace ag::nn
