// Stochastic gradient descent with PyTorch's update equations. Per parameter p with gradient g:
//   d <- g + weight_decay * p
//   if momentum != 0:  b <- d (first step), else b <- momentum * b + (1 - dampening) * d
//                      d <- d + momentum * b (nesterov)  or  d <- b
//   p <- p - lr * d
// The rule is written once, in sgd.cpp, as one element function of foreach_update_.
#pragma once

#include "nn/optim/optimizer.h"

namespace ag::nn {

// SGD's hyper-parameters. Written with designated initialisers, e.g. {.lr = 0.1, .momentum = 0.9};
// fields not named keep the defaults below.
struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;

  template <class Self, class F>
  static void fields(Self& o, F&& f) {
    f("lr", o.lr);
    f("momentum", o.momentum);
    f("dampening", o.dampening);
    f("weight_decay", o.weight_decay);
    f("nesterov", o.nesterov);
  }
  // ValueError for a negative learning rate, or nesterov without momentum or with dampening.
  void validate() const;
};

class SGD : public OptimizerWith<SGDOptions> {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& options = {});
  void step() override;

 private:
  void step_group(size_t group);
};

}  // namespace ag::nn
