// Adam and AdamW with PyTorch's update equations. Per parameter p, gradient g, step t:
//   Adam:  g <- g + weight_decay * p              (L2 penalty through the gradient)
//   AdamW: p <- p * (1 - lr * weight_decay)       (decoupled decay)
//   m <- beta1 m + (1 - beta1) g ;  v <- beta2 v + (1 - beta2) g^2
//   (amsgrad: vmax <- max(vmax, v), used in place of v)
//   p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The rule is written once, in adam.cpp, as one element function of foreach_update_; t counts
// the steps of each parameter (a parameter without a gradient does not advance).
#pragma once

#include "nn/optim/optimizer.h"

namespace ag::nn {

// Adam's hyper-parameters. Written with designated initialisers, e.g. {.lr = 3e-4, .beta2 = 0.95};
// fields not named keep the defaults below.
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;

  template <class Self, class F>
  static void fields(Self& o, F&& f) {
    f("lr", o.lr);
    f("beta1", o.beta1);
    f("beta2", o.beta2);
    f("eps", o.eps);
    f("weight_decay", o.weight_decay);
    f("amsgrad", o.amsgrad);
  }
  // ValueError for a negative learning rate or eps, or betas outside [0, 1).
  void validate() const;
};

// AdamW's hyper-parameters: Adam's, but weight_decay defaults to 0.01 (PyTorch's default). A type
// of its own so that AdamW(params, {.lr = 3e-4}) keeps the 0.01, which it would lose if AdamW took
// an AdamOptions (whose weight_decay default is 0).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  bool amsgrad = false;
};

class Adam : public OptimizerWith<AdamOptions> {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& options = {});
  void step() override;

 protected:
  Adam(std::vector<Tensor> params, const AdamOptions& options, bool decoupled);
  bool decoupled_;

 private:
  void step_group(size_t group);
};

// AdamW: weight decay decoupled from the gradient (default weight_decay 0.01, as in PyTorch).
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& options = {});
  // The defaults (kept for code written before AdamWOptions existed).
  static AdamWOptions with_decay() { return {}; }
};

}  // namespace ag::nn
