// Fused in-place parameter updates, the optimizers' inner loops (nn/optim): one pass over a
// parameter and its state instead of one elementwise op per term. They write tensors in place and
// are not recorded: call them under NoGradGuard, on leaves.
#pragma once

#include <span>

#include "autograd/tensor.h"

namespace ag {

// Hyper-parameters of one Adam step; bias_correction1/2 are 1 - beta1^t and 1 - beta2^t.
struct AdamStep {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled = false;  // AdamW: decay the weights directly instead of through the gradient
  double bias_correction1 = 1.0;
  double bias_correction2 = 1.0;
};

// One Adam / AdamW step on parameter p with gradient g, first moment m, second moment v and, for
// amsgrad, the running maximum vmax of v (undefined otherwise), elementwise:
//   decoupled:  p <- p (1 - lr wd)            else  g <- g + wd p
//   m <- m + (1 - beta1) (g - m) ;  v <- beta2 v + (1 - beta2) g^2 ;  vmax <- max(vmax, v)
//   p <- p - lr / bias_correction1 * m / (sqrt(vmax or v) / sqrt(bias_correction2) + eps)
// p, m, v (and vmax) are written in place; all have p's shape and float dtype (g may be of another
// float dtype or layout; it is converted). ShapeError / DtypeError name the tensor that differs.
void adam_step_(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, Tensor& vmax, const AdamStep& s);

// Hyper-parameters of one SGD step; first_step: the momentum buffer is set to the gradient rather
// than blended into.
struct SgdStep {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool first_step = false;
};

// One SGD step on parameter p with gradient g and momentum buffer buf (unused, may be undefined,
// without momentum), elementwise:
//   d <- g + wd p
//   momentum:  buf <- d (first step)  or  buf <- momentum buf + (1 - dampening) d
//              d <- d + momentum buf (nesterov)  or  d <- buf
//   p <- p - lr d
// Same requirements and errors as adam_step_.
void sgd_step_(Tensor& p, const Tensor& g, Tensor& buf, const SgdStep& s);

// ---- many parameters in one pass (what the optimizers call) ----
// A step of each listed parameter with its own hyper-parameters (the bias corrections and
// first_step differ from parameter to parameter; the rest normally do not). Results are those of
// the one-parameter forms above, element for element; the difference is the schedule: all
// contiguous parameters of a dtype are updated in one parallel region (each thread takes its
// share of every parameter), instead of one region per parameter and small ones on one thread
// while the others wait. Non-contiguous operands are updated one parameter at a time. Errors as
// above, raised before any parameter is written.
struct AdamItem {
  Tensor* param;
  const Tensor* grad;
  Tensor* exp_avg;
  Tensor* exp_avg_sq;
  Tensor* max_exp_avg_sq;  // null or undefined without amsgrad
  AdamStep step;
};
void adam_step_(std::span<const AdamItem> items);

struct SgdItem {
  Tensor* param;
  const Tensor* grad;
  Tensor* momentum_buffer;  // null or undefined without momentum
  SgdStep step;
};
void sgd_step_(std::span<const SgdItem> items);

}  // namespace ag
