// Binary elementwise ops with NumPy broadcasting, comparisons, selection, and the C++ operators.
//
// Shapes: a [..] and b [..] broadcast to out [..] (NumPy rules; a ShapeError names both shapes when
// they do not). Gradients are given for the broadcast shape; the engine sums them back to each
// input's shape. float32 with float64 promotes to float64. Scalars on either side are 0-d
// constants.
#pragma once

#include "autograd/tensor.h"

namespace ag {

// out = a + alpha * b.            d/da = 1, d/db = alpha
Tensor add(const Tensor& a, const Tensor& b, double alpha = 1.0);
// out = a - alpha * b.            d/da = 1, d/db = -alpha
Tensor sub(const Tensor& a, const Tensor& b, double alpha = 1.0);
// out = a * b.                    d/da = b, d/db = a
Tensor mul(const Tensor& a, const Tensor& b);
// out = a / b.                    d/da = 1/b, d/db = -a/b^2
Tensor div(const Tensor& a, const Tensor& b);
// out = a^b (elementwise).        d/da = b a^(b-1), d/db = a^b log(a)
Tensor pow(const Tensor& a, const Tensor& b);
// out = min(a, b), max(a, b).     gradient to the smaller (larger) input; split evenly on ties
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);

// With a scalar: out = a + s, a * s, s / a, ...  (one recorded op, no scalar tensor is made)
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor rsub(const Tensor& a, double s);  // s - a
Tensor rdiv(const Tensor& a, double s);  // s / a.   d/da = -s / a^2
// out = a^p.                      d/da = p a^(p-1)
Tensor pow(const Tensor& a, double p);
// out = s^a.                      d/da = s^a log(s)
Tensor pow(double s, const Tensor& a);

// Comparisons: bool tensors (masks), not differentiable.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& mask);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);

// out = cond ? a : b (cond: bool mask, broadcast with a and b).  d/da = cond, d/db = !cond
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// out = mask ? value : x.          d/dx = !mask
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// ---- operators (scalars on either side) ----
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(const Tensor& a, double s);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(const Tensor& a, double s);
Tensor operator*(double s, const Tensor& a);
Tensor operator/(const Tensor& a, double s);
Tensor operator/(double s, const Tensor& a);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, double s);
Tensor operator<=(const Tensor& a, double s);
Tensor operator>(const Tensor& a, double s);
Tensor operator>=(const Tensor& a, double s);

// ---- internals shared by ops ----
// A fresh contiguous tensor of the broadcast shape of a and b (throws ShapeError naming `op`).
Tensor empty_broadcast(const Tensor& a, const Tensor& b, Dtype dtype, const char* op);

}  // namespace ag
