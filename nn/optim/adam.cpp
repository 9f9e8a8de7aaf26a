#include "nn/optim/adam.h"

#include <cmath>

namespace ag::nn {

Adam::Adam(std::vector<Tensor> params, const AdamOptions& o) : Adam(std::move(params), o, false) {}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& o, bool decoupled)
    : Optimizer({{"lr", o.lr},
                 {"beta1", o.beta1},
                 {"beta2", o.beta2},
                 {"eps", o.eps},
                 {"weight_decay", o.weight_decay},
                 {"amsgrad", o.amsgrad ? 1.0 : 0.0}}),
      decoupled_(decoupled) {
  if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1))
    fail<ValueError>("Adam: betas must be in [0, 1), got {} and {}", o.beta1, o.beta2);
  if (!(o.eps >= 0)) fail<ValueError>("Adam: eps must be non-negative, got {}", o.eps);
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
  auto& groups = param_groups();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    ParamGroup& g = groups[gi];
    double lr = option(g, "lr"), b1 = option(g, "beta1"), b2 = option(g, "beta2");
    double eps = option(g, "eps"), wd = option(g, "weight_decay");
    bool amsgrad = option(g, "amsgrad") != 0;
    // One pass over the whole group (adam_step_'s many-parameter form).
    std::vector<Tensor> grads(g.params.size());
    std::vector<AdamItem> items;
    items.reserve(g.params.size());
    for (size_t i = 0; i < g.params.size(); ++i) {
      Tensor& p = g.params[i];
      grads[i] = p.grad();
      if (!grads[i].defined()) continue;
      Tensor& step_t = buffer(gi, i, "step", scalar_tensor(0.0, float64));
      step_t.add_(1.0);
      double t = step_t.item();
      items.push_back({&p, &grads[i], &buffer(gi, i, "exp_avg", p), &buffer(gi, i, "exp_avg_sq", p),
                       amsgrad ? &buffer(gi, i, "max_exp_avg_sq", p) : nullptr,
                       AdamStep{.lr = lr,
                                .beta1 = b1,
                                .beta2 = b2,
                                .eps = eps,
                                .weight_decay = wd,
                                .decoupled = decoupled_,
                                .bias_correction1 = 1 - std::pow(b1, t),
                                .bias_correction2 = 1 - std::pow(b2, t)}});
    }
    adam_step_(items);
  }
}

}  // namespace ag::nn
