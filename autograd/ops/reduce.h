// Reductions over a set of axes (negative axes count from the end; an empty list means all axes),
// with keepdim keeping reduced axes as size 1. Gradients are broadcast back over the reduced axes.
// Errors: an axis out of range (or given twice) raises IndexError naming the op and the shape; ops
// that need floats (mean, var, std, logsumexp, norm, softmax, log_softmax) raise DtypeError for
// integer tensors.
#pragma once

#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace ag {

using Axes = std::vector<int64_t>;

// sum over axes (bool sums to int64).                    d/dx = 1 (g broadcast)
Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// mean over axes.                                        d/dx = 1/n
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// variance sum((x - mean)^2) / (n - correction); correction = 1 (Bessel's) by default, 0 for the
// population variance. n - correction <= 0 divides by zero (NaN), as in PyTorch.
//                                                        d/dx = 2 (x - mean) / (n - correction)
Tensor var(const Tensor& x, const Axes& axes = {}, int64_t correction = 1, bool keepdim = false);
// sqrt(var).                                             d/dx = (x - mean) / ((n - correction) std)
// Call it as ag::std: under `using namespace ag` a bare std(...) is ambiguous with namespace std.
Tensor std(const Tensor& x, const Axes& axes = {}, int64_t correction = 1, bool keepdim = false);
// max / min over axes (values; NaN propagates). Gradient goes to the extremal elements, split
// evenly on ties. Reducing over an empty axis raises IndexError.
Tensor amax(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// max / min along one axis: (values, int64 indices of the first extremum). Gradient flows to the
// selected index only: d/dx = g where the position along axis equals the index, else 0.
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t axis, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t axis, bool keepdim = false);
// Whole-tensor max / min (values, shape []); gradient split evenly on ties, like amax / amin.
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
// int64 index of the first max / min along an axis (not differentiable).
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t axis, bool keepdim = false);
// log(sum(exp(x))) computed stably (shifted by the detached max).   d/dx = softmax(x) (over axes)
Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdim = false);
// p-norm over axes: (sum |x|^p)^(1/p) for p > 0; p = infinity gives max |x|. ValueError otherwise.
//   d/dx = sign(x) |x|^(p-1) / out^(p-1)   (p = 2: x / out; p = 1: sign(x); 0 where out = 0)
Tensor norm(const Tensor& x, double p = 2.0, const Axes& axes = {}, bool keepdim = false);

// softmax along an axis: out = e^(x - max) / sum e^(x - max), one fused pass per lane; finite for
// logits of +-1e4 (a lane of only -inf gives NaN, as in PyTorch).
//   d/dx (vector-Jacobian) = out * (g - sum(g * out, axis))
Tensor softmax(const Tensor& x, int64_t axis = -1);
// log_softmax: out = x - max - log(sum e^(x - max)), fused.   d/dx = g - exp(out) * sum(g, axis)
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

}  // namespace ag
