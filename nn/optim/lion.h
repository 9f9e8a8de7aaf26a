// Lion (evolved sign momentum; Chen et al., 2023, "Symbolic Discovery of Optimization
// Algorithms"). Per parameter p with gradient g and momentum m:
//   c <- beta1 m + (1 - beta1) g          (the direction: the sign of an interpolation)
//   p <- p (1 - lr weight_decay) - lr sign(c)
//   m <- beta2 m + (1 - beta2) g
// Every element moves by exactly lr (or 0 where c is 0), so Lion wants a learning rate 3-10x
// smaller than AdamW's and a weight decay 3-10x larger. One buffer per parameter (AdamW has two).
//
// This file is the whole optimizer: options, class and update rule. docs/contributing.md, "Adding
// an optimizer", walks through it.
#pragma once

#include "nn/optim/optimizer.h"

namespace ag::nn {

struct LionOptions {
  double lr = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.99;
  double weight_decay = 0.0;

  template <class Self, class F>
  static void fields(Self& o, F&& f) {
    f("lr", o.lr);
    f("beta1", o.beta1);
    f("beta2", o.beta2);
    f("weight_decay", o.weight_decay);
  }
  void validate() const {
    if (!(lr >= 0)) fail<ValueError>("Lion: negative learning rate {}", lr);
    if (!(beta1 >= 0 && beta1 <= 1 && beta2 >= 0 && beta2 <= 1))
      fail<ValueError>("Lion: betas must be in [0, 1], got {} and {}", beta1, beta2);
  }
};

class Lion : public OptimizerWith<LionOptions> {
 private:
  // The element function of one group, for values or SIMD batches of type T.
  static auto rule(const LionOptions& o) {
    return [o]<class T>(size_t /*item*/) {
      const T lr = static_cast<T>(o.lr), keep = static_cast<T>(1 - o.lr * o.weight_decay);
      const T b1 = static_cast<T>(o.beta1), b2 = static_cast<T>(o.beta2);
      return [=](auto& x) {  // x: p, g, m
        using V = std::decay_t<decltype(x[0])>;
        const V c = V(b1) * x[2] + (V(1) - V(b1)) * x[1];
        x[0] = x[0] * V(keep) - V(lr) * xsimd::sign(c);
        x[2] = V(b2) * x[2] + (V(1) - V(b2)) * x[1];
      };
    };
  }

 public:
  Lion(std::vector<Tensor> params, const LionOptions& options = {}) : OptimizerWith(options) {
    add_param_group(std::move(params));
  }

  void step() override {
    NoGradGuard not_recorded;
    ++steps_;
    for (size_t g = 0; g < param_groups().size(); ++g) {
      const Group& group = param_groups()[g];
      // Operands of each parameter with a gradient: p, g (in p's dtype), m.
      std::vector<std::array<Tensor, 3>> items;
      for (size_t i = 0; i < group.params.size(); ++i) {
        const Tensor& p = group.params[i];
        if (!p.grad().defined()) continue;
        items.push_back({p, p.grad().to(p.dtype()), buffer(g, i, "exp_avg", p)});
      }
      foreach_update_<3>(items, {true, false, true}, rule(group.options));
    }
  }
};

}  // namespace ag::nn
