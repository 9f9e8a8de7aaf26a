// Activation functions (elementwise, out has x's shape; float tensors only, DtypeError otherwise).
// Derivative = factor multiplying g. Each has a fused forward; its backward is built from
// differentiable ops, so second derivatives work.
#pragma once

#include <string_view>

#include "autograd/tensor.h"

namespace ag {

// max(x, 0).                         d = [x > 0]
Tensor relu(const Tensor& x);
// g * [out > 0] in one pass (relu's backward, given relu's output). Differentiable in g
// (d/dg = [out > 0]); the factor is piecewise constant, so no gradient flows to `out`.
Tensor relu_backward(const Tensor& g, const Tensor& out);
// x > 0 ? x : slope x.               d = x > 0 ? 1 : slope
Tensor leaky_relu(const Tensor& x, double slope = 0.01);
// x > 0 ? x : alpha (e^x - 1).       d = x > 0 ? 1 : out + alpha
Tensor elu(const Tensor& x, double alpha = 1.0);
// GELU. "none": x Phi(x) with Phi the normal CDF (erf form), d = Phi(x) + x phi(x);
// "tanh": 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3),
//         d = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi)(1 + 3 * 0.044715 x^2)
// Any other `approximate` raises ValueError.
Tensor gelu(const Tensor& x, std::string_view approximate = "none");
// g * gelu'(x) in one pass: GELU's backward, an op of its own so it runs as one fused kernel and is
// itself differentiable (d/dg = gelu'(x), d/dx = g gelu''(x)), so second derivatives still work.
//   "none": gelu''(x) = phi(x) (2 - x^2);   "tanh": gelu''(x) = (1 - t^2)(u' + x (u'' - 2 t u'^2) /
//   2)
Tensor gelu_backward(const Tensor& g, const Tensor& x, std::string_view approximate = "none");
// x sigmoid(x), s = sigmoid(x).      d = s (1 + x (1 - s))
Tensor silu(const Tensor& x);
// ln(1 + e^(beta x)) / beta, linear (= x) where beta x > threshold.
//   d = sigmoid(beta x) (1 in the linear part).  beta must be positive (ValueError).
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);

}  // namespace ag
