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
    ParamGroup& g = groups[gi];
    double lr = option(g, "lr"), mom = option(g, "momentum"), damp = option(g, "dampening");
    double wd = option(g, "weight_decay");
    bool nesterov = option(g, "nesterov") != 0;
    // One pass over the whole group (sgd_step_'s many-parameter form).
    std::vector<Tensor> grads(g.params.size());
    std::vector<SgdItem> items;
    items.reserve(g.params.size());
    for (size_t i = 0; i < g.params.size(); ++i) {
      Tensor& p = g.params[i];
      grads[i] = p.grad();
      if (!grads[i].defined()) continue;
      const bool first = mom != 0 && !has_buffer(gi, i, "momentum");
      items.push_back({&p,
                       &grads[i],
                       mom != 0 ? &buffer(gi, i, "momentum", p) : nullptr,
                       {.lr = lr,
                        .momentum = mom,
                        .dampening = damp,
                        .weight_decay = wd,
                        .nesterov = nesterov,
                        .first_step = first}});
    }
    sgd_step_(items);
  }
}

}  // namespace ag::nn
