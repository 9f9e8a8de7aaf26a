// Activation functions (elementwise, out has x's shape). Derivative = factor multiplying g.
#pragma once

#include <string_view>

#include "autograd/tensor.h"

namespace ag {

Tensor relu(const Tensor& x);                              // max(x, 0)        d = [x > 0]
Tensor leaky_relu(const Tensor& x, double slope = 0.01);   // x>0 ? x : slope x   d = x>0 ? 1 : slope
Tensor elu(const Tensor& x, double alpha = 1.0);           // x>0 ? x : alpha(e^x - 1)   d = x>0 ? 1 : out + alpha
// GELU. "none": x Phi(x) with Phi the normal CDF (erf form), d = Phi(x) + x phi(x);
// "tanh": 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3),
//         d = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi)(1 + 3 * 0.044715 x^2)
Tensor gelu(const Tensor& x, std::string_view approximate = "none");
Tensor silu(const Tensor& x);                              // x sigmoid(x)     d = s (1 + x (1 - s))
// ln(1 + e^(beta x)) / beta, linear (= x) above beta x > threshold.   d = sigmoid(beta x)
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);

}  // namespace ag
