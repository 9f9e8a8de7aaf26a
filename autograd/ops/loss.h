// Fused, numerically stable losses that nn/ builds on. Each is one recorded op whose forward works
// row by row (log-softmax shifted by the row max, so logits of +-1e4 give finite losses and
// gradients) and whose backward is written with differentiable ops (softmax, mul...), so second
// derivatives work. cross_entropy's plain backward (no create_graph) computes the same gradient in
// one fused pass instead.
#pragma once

#include <string_view>

#include "autograd/tensor.h"

namespace ag {

// Cross-entropy from logits x [N, C] (or [C]) and int64 class indices t [N] (or []):
//   loss_i = logsumexp(x_i) - sum_c q_ic x_ic,   q_i = (1 - eps) onehot(t_i) + eps / C
// (eps = label_smoothing in [0, 1]; eps = 0 gives logsumexp(x_i) - x_i[t_i]).
// Rows whose target equals ignore_index contribute nothing. reduction: "mean" (over the rows not
// ignored), "sum" -> []; "none" -> [N] (0 for ignored rows).
//   d/dx_i = (softmax(x_i) - q_i) * g * w_i,   w_i = 0 if ignored, 1 / count for mean, else 1.
// "mean" with every row ignored is 0 / 0 = NaN, as in PyTorch; its gradient is zero. "mean" over an
// empty batch (logits [0, C]) raises ValueError instead.
// An ignored row's gradient is exactly zero, whatever its logits. Float32 and float64 logits of at
// most 2^16 elements get (softmax - q) * w computed by the forward, which keeps it (a buffer the
// size of the logits) for the plain backward to scale.
// Errors: DtypeError for non-float logits or non-int64 targets; ShapeError when the logits are not
// [N, C] / [C] or the targets are not [N] / []; IndexError naming the target value and C for a
// target outside [0, C) other than ignore_index; ValueError for an unknown reduction or for eps
// outside [0, 1]. bfloat16 logits are read in float32 and give a float32 loss (both losses).
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     std::string_view reduction = "mean", int64_t ignore_index = -100,
                     double label_smoothing = 0.0);
// Cross-entropy against target probabilities q [N, C] (or [C], same shape as the logits; soft
// labels), smoothed as q' = (1 - eps) q + eps / C:
//   loss_i = -sum_c q'_ic log_softmax(x_i)_c        (terms with q'_ic = 0 are skipped)
//   d/dx_i = (softmax(x_i) sum_c q'_ic - q'_i) * g,  d/dq_i = -(1 - eps) log_softmax(x_i) * g
// with g divided by N for "mean" (the mean over rows). Targets need not sum to 1; gradients flow to
// them too when they require grad. Float targets of another dtype are converted to the logits' one.
// ValueError for a NaN in the targets and for "mean" over an empty batch.
Tensor cross_entropy_soft(const Tensor& logits, const Tensor& target_probs,
                          std::string_view reduction = "mean", double label_smoothing = 0.0);

}  // namespace ag
