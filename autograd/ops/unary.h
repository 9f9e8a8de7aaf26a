// Unary elementwise math. Each: out[i] = f(x[i]), same shape as x; float tensors only.
// The derivative d is the factor multiplying the incoming gradient g (backward: g d) and the
// tangent t (forward mode: t d).
#pragma once

#include <limits>

#include "autograd/tensor.h"

namespace ag {

Tensor neg(const Tensor& x);      // -x                       d = -1
Tensor exp(const Tensor& x);      // e^x                      d = out
Tensor log(const Tensor& x);      // ln x                     d = 1/x
Tensor log1p(const Tensor& x);    // ln(1 + x)                d = 1/(1 + x)
Tensor expm1(const Tensor& x);    // e^x - 1 (exact near 0)   d = out + 1
Tensor sqrt(const Tensor& x);     // sqrt(x)                  d = 1/(2 out)
Tensor rsqrt(const Tensor& x);    // 1/sqrt(x)                d = -out^3 / 2
Tensor abs(const Tensor& x);      // |x|                      d = sign(x)
Tensor sign(const Tensor& x);     // -1, 0 or 1               d = 0
Tensor square(const Tensor& x);   // x^2                      d = 2x
Tensor sin(const Tensor& x);      // sin x                    d = cos x
Tensor cos(const Tensor& x);      // cos x                    d = -sin x
Tensor erf(const Tensor& x);      // erf x                    d = 2/sqrt(pi) e^(-x^2)
Tensor tanh(const Tensor& x);     // tanh x                   d = 1 - out^2
Tensor sigmoid(const Tensor& x);  // 1/(1 + e^-x)             d = out (1 - out)
// min(max(x, lo), hi).  d = 1 where lo <= x <= hi, else 0
Tensor clamp(const Tensor& x, double lo = -std::numeric_limits<double>::infinity(),
             double hi = std::numeric_limits<double>::infinity());

}  // namespace ag
