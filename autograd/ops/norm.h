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

}  // namespace ag
