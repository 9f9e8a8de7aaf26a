#include "nn/optim/adam.h"

#include <cmath>

#include "autograd/foreach.h"

namespace ag::nn {

void AdamOptions::validate() const {
  if (!(lr >= 0)) fail<ValueError>("optimizer: negative learning rate {}", lr);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
    fail<ValueError>("Adam: betas must be in [0, 1), got {} and {}", beta1, beta2);
  if (!(eps >= 0)) fail<ValueError>("Adam: eps must be non-negative, got {}", eps);
}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& o) : Adam(std::move(params), o, false) {}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& o, bool decoupled)
    : OptimizerWith(o), decoupled_(decoupled) {
  add_param_group(std::move(params));
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& o)
    : Adam(std::move(params),
           AdamOptions{.lr = o.lr,
                       .beta1 = o.beta1,
                       .beta2 = o.beta2,
                       .eps = o.eps,
                       .weight_decay = o.weight_decay,
                       .amsgrad = o.amsgrad},
           true) {}

void Adam::step() {
  NoGradGuard ng;
  ++steps_;
  for (size_t g = 0; g < param_groups().size(); ++g) step_group(g);
}

void Adam::step_group(size_t gi) {
  const Group& group = param_groups()[gi];
  const AdamOptions& o = group.options;
  const bool ams = o.amsgrad, decoupled = decoupled_;
  const bool l2 = !decoupled && o.weight_decay != 0, decay = decoupled && o.weight_decay != 0;
  // Operands: parameter, gradient (in the parameter's dtype), m, v and vmax (v again, not
  // written, without amsgrad).
  std::vector<std::array<Tensor, 5>> items;
  std::vector<double> t;  // each parameter's step number
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    Tensor grad = p.grad();
    if (!grad.defined()) continue;
    Tensor& step = buffer(gi, i, "step", scalar_tensor(0.0, float64));
    step.add_(1.0);
    t.push_back(step.item());
    Tensor& v = buffer(gi, i, "exp_avg_sq", p);
    items.push_back({p, grad.to(p.dtype()), buffer(gi, i, "exp_avg", p), v,
                     ams ? buffer(gi, i, "max_exp_avg_sq", p) : v});
  }
  foreach_update_<5>(items, {true, false, true, true, ams}, [&]<class T>(size_t i) {
    const double bias1 = 1 - std::pow(o.beta1, t[i]), bias2 = 1 - std::pow(o.beta2, t[i]);
    const T wd = static_cast<T>(o.weight_decay), keep = static_cast<T>(1 - o.lr * o.weight_decay);
    const T b1 = static_cast<T>(1 - o.beta1), b2 = static_cast<T>(o.beta2);
    const T nb2 = static_cast<T>(1 - o.beta2), eps = static_cast<T>(o.eps);
    const T rbc2 = static_cast<T>(1 / std::sqrt(bias2)), step = static_cast<T>(-o.lr / bias1);
    return [=](auto& x) {  // x: p, g, m, v, vmax
      using V = std::decay_t<decltype(x[0])>;
      V g = l2 ? x[1] + V(wd) * x[0] : x[1];
      if (decay) x[0] = x[0] * V(keep);
      x[2] = x[2] + V(b1) * (g - x[2]);
      x[3] = V(b2) * x[3] + V(nb2) * g * g;
      if (ams) x[4] = foreach_maximum(x[4], x[3]);
      x[0] = x[0] + V(step) * x[2] / (foreach_sqrt(ams ? x[4] : x[3]) * V(rbc2) + V(eps));
    };
  });
}

}  // namespace ag::nn
