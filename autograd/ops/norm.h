// Normalisation layers' ops.
#pragma once

#include "autograd/tensor.h"

namespace ag {

// Layer normalisation over the trailing axes given by normalized_shape (n = their element count):
//   mean = sum(x) / n,  var = sum((x - mean)^2) / n,  xhat = (x - mean) / sqrt(var + eps)
//   out = xhat * weight + bias        (weight, bias: normalized_shape, or undefined for none)
// Backward, with gw = g * weight:
//   dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)),  dweight = sum(g * xhat),  dbias = sum(g)
// (sums over the leading axes). The forward is one pass per row and saves mean and rstd; the
// backward is one pass from them, or, under create_graph, the same formula in differentiable ops.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

// Batch normalisation of x [N, C, *] (any number of trailing axes, none included) per channel c,
// over the batch and the trailing axes (n = numel / C values per channel):
//   training: mean = sum(x) / n, var = sum((x - mean)^2) / n (biased) of this batch, and, when
//     the running tensors are given, in place (not recorded):
//       running_mean = (1 - momentum) running_mean + momentum mean
//       running_var  = (1 - momentum) running_var + momentum var * n / (n - 1)   (unbiased)
//   eval: mean = running_mean, var = running_var (constants)
//   out = (x - mean) / sqrt(var + eps) * weight[c] + bias[c]   (weight, bias: [C] or undefined)
// Written with differentiable ops, so in training the derivative carries the batch statistics'
// dependence on x (dx = rstd (gw - mean(gw) - xhat mean(gw xhat)), gw = g weight, the means over
// the channel's n values), in eval it is g weight rstd; dweight = sum(g xhat), dbias = sum(g).
// ShapeError if x has fewer than 2 axes or a [C] tensor has another shape; ValueError in training
// when a channel has a single value (n = 1) or in eval without running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  bool training = true, double momentum = 0.1, double eps = 1e-5);

// Group normalisation of x [N, C, *]: the C channels are split into num_groups groups of C / G
// consecutive channels, and each sample's group is normalised over its channels and trailing axes
// together (layer_norm of x viewed as [N, G, C/G * rest]), then scaled and shifted per channel:
//   out = (x - mean_group) / sqrt(var_group + eps) * weight[c] + bias[c]
// Derivatives are layer_norm's and the elementwise affine's. ShapeError if num_groups does not
// divide C, or weight / bias are not [C].
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

}  // namespace ag
