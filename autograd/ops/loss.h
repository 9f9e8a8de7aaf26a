// Fused, numerically stable losses that nn/ builds on. Each has one backward pass of its own.
#pragma once

#include <string_view>

#include "autograd/tensor.h"

namespace ag {

// Cross-entropy from logits [N, C] (or [C]) and int64 class indices [N] (or []):
//   loss_i = logsumexp(x_i) - x_i[y_i]; reduction "mean" (over non-ignored rows), "sum" or "none".
// Rows whose target equals ignore_index contribute nothing. label_smoothing eps mixes the one-hot
// target with the uniform distribution: q = (1 - eps) onehot + eps / C.
//   d/dx_i = (softmax(x_i) - q_i) * (g / count)
// IndexError for a target outside [0, C) (other than ignore_index).
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     std::string_view reduction = "mean", int64_t ignore_index = -100,
                     double label_smoothing = 0.0);
// Cross-entropy against target probabilities [N, C] (soft labels):
//   loss_i = -sum_c q_ic log_softmax(x_i)_c.   d/dx = softmax(x) - q (times g / N for mean)
Tensor cross_entropy_soft(const Tensor& logits, const Tensor& target_probs,
                          std::string_view reduction = "mean", double label_smoothing = 0.0);

}  // namespace ag
