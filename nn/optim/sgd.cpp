#include "nn/optim/sgd.h"

namespace ag::nn {

SGD::SGD(std::vector<Tensor> params, const SGDOptions& o)
    : Optimizer({{"lr", o.lr},
                 {"momentum", o.momentum},
                 {"dampening", o.dampening},
                 {"weight_decay", o.weight_decay},
                 {"nesterov", o.nesterov ? 1.0 : 0.0}}) {
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    fail<ValueError>("SGD: nesterov needs momentum > 0 and dampening 0");
  add_param_group(std::move(params));
}

void SGD::step() {
  NoGradGuard ng;
  ++steps_;
  auto& groups = param_groups();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const ParamGroup& g = groups[gi];
    double lr = option(g, "lr"), mom = option(g, "momentum"), damp = option(g, "dampening");
    double wd = option(g, "weight_decay");
    bool nesterov = option(g, "nesterov") != 0;
    for (size_t i = 0; i < g.params.size(); ++i) {
      Tensor p = g.params[i];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      if (wd != 0) grad = add(grad, p, wd);
      if (mom != 0) {
        bool first = !has_buffer(gi, i, "momentum");
        Tensor& b = buffer(gi, i, "momentum", p);
        if (first) {
          b.copy_(grad);
        } else {
          b.mul_(mom).add_(grad, 1 - damp);
        }
        grad = nesterov ? add(grad, b, mom) : b;
      }
      p.add_(grad, -lr);
    }
  }
}

}  // namespace ag::nn
