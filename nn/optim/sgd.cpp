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

namespace {

// SGD's rule over items (p, g) or, with momentum, (p, g, b); first[i]: item i's momentum buffer
// is new, so it is set to d rather than blended into.
template <size_t N>
void sgd_update(const std::vector<std::array<Tensor, N>>& items, const SGDOptions& o,
                const std::vector<bool>& first) {
  const bool l2 = o.weight_decay != 0, nesterov = o.nesterov;
  std::array<bool, N> written{};
  written[0] = true;
  if constexpr (N == 3) written[2] = true;
  foreach_update_<N>(items, written, [&]<class T>(size_t i) {
    const T lr = static_cast<T>(o.lr), wd = static_cast<T>(o.weight_decay);
    const T mu = static_cast<T>(o.momentum), keep = static_cast<T>(1 - o.dampening);
    const bool first_step = N == 3 && first[i];
    return [=](auto& x) {  // x: p, g (, b)
      using V = std::decay_t<decltype(x[0])>;
      V d = l2 ? x[1] + V(wd) * x[0] : x[1];
      if constexpr (N == 3) {
        x[2] = first_step ? d : V(mu) * x[2] + V(keep) * d;
        d = nesterov ? d + V(mu) * x[2] : x[2];
      }
      x[0] = x[0] - V(lr) * d;
    };
  });
}

}  // namespace

void SGD::step_group(size_t gi) {
  const Group& group = param_groups()[gi];
  const SGDOptions& o = group.options;
  // Operands: parameter, gradient (in the parameter's dtype) and, with momentum, its buffer.
  if (o.momentum == 0) {
    std::vector<std::array<Tensor, 2>> items;
    items.reserve(group.params.size());
    for (const Tensor& p : group.params)
      if (p.grad().defined()) items.push_back({p, p.grad().to(p.dtype())});
    return sgd_update<2>(items, o, {});
  }
  std::vector<std::array<Tensor, 3>> items;
  std::vector<bool> first;
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    if (!p.grad().defined()) continue;
    first.push_back(!has_buffer(gi, i, "momentum"));
    items.push_back({p, p.grad().to(p.dtype()), buffer(gi, i, "momentum", p)});
  }
  sgd_update<3>(items, o, first);
}

}  // namespace ag::nn
