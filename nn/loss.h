// Loss functions. Each takes predictions and targets and a reduction: "mean" (default), "sum" or
// "none" (per-element / per-row losses). Float targets holding NaN, and "mean" over an empty batch
// (0 / 0), raise ValueError naming the loss and the shapes. All are compositions of autograd ops,
// except cross_entropy, which is the engine's fused, stable op (ops/loss.h).
#pragma once

#include <string_view>

#include "autograd/autograd.h"

namespace ag::nn {

// Mean squared error: (pred - target)^2, reduced. Shapes must match (or broadcast). d/dpred = 2
// (pred - target) / N
Tensor mse_loss(const Tensor& pred, const Tensor& target, std::string_view reduction = "mean");

// Cross-entropy from logits [N, C] (or [C]) with int64 class indices [N] (ignore_index,
// label_smoothing as in PyTorch), or with probability targets [N, C] (float dtype).
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     std::string_view reduction = "mean", int64_t ignore_index = -100,
                     double label_smoothing = 0.0);

// Negative log-likelihood of log-probabilities [N, C] at int64 targets [N]: -log_probs[i,
// target_i].
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, std::string_view reduction = "mean",
                int64_t ignore_index = -100);

// Binary cross-entropy on logits, stable for any logit:
//   loss = max(x, 0) - x y + log(1 + e^(-|x|)),   d/dx = sigmoid(x) - y
// pos_weight (optional, broadcast over the last axis) multiplies the positive term.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        std::string_view reduction = "mean",
                                        const Tensor& pos_weight = Tensor());

// Applies a reduction name to per-element losses (ValueError for unknown names).
Tensor reduce_loss(const Tensor& losses, std::string_view reduction, const char* op);

}  // namespace ag::nn
