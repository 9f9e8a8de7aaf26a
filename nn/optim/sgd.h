// Stochastic gradient descent with PyTorch's update equations. Per parameter p with gradient g:
//   g <- g + weight_decay * p
//   if momentum != 0:  b <- g (first step), else b <- momentum * b + (1 - dampening) * g
//                      g <- g + momentum * b (nesterov)  or  g <- b
//   p <- p - lr * g
#pragma once

#include "nn/optim/optimizer.h"

namespace ag::nn {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& options = {});
  void step() override;
};

}  // namespace ag::nn
