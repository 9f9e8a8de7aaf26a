// Reductions over a set of axes (negative axes count from the end; an empty list means all axes), with
// keepdim keeping reduced axes as size 1. Gradients are broadcast back over the reduced axes.
#pragma once

#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace ag {

using Axes = std::vector<int64_t>;

// sum over axes.                                         d/dx = 1 (g broadcast)
Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// mean over axes.                                        d/dx = 1/n
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// variance with Bessel's correction by default (correction = 1: divide by n - 1).
//                                                        d/dx = 2 (x - mean) / (n - correction)
Tensor var(const Tensor& x, const Axes& axes = {}, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, const Axes& axes = {}, int64_t correction = 1, bool keepdim = false);
// max / min over axes (values). Gradient goes to the extremal elements, split evenly on ties.
Tensor amax(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// max / min along one axis: (values, int64 indices of the first extremum). Gradient flows to the
// selected index.
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t axis, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t axis, bool keepdim = false);
// Whole-tensor max / min (values).
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
// int64 index of the first max / min along an axis (not differentiable).
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t axis, bool keepdim = false);
// log(sum(exp(x))) computed stably (shifted by the max).   d/dx = softmax(x)
Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdim = false);
// p-norm over axes: (sum |x|^p)^(1/p).   p = 2: d/dx = x / out
Tensor norm(const Tensor& x, double p = 2.0, const Axes& axes = {}, bool keepdim = false);

// softmax along an axis: out = e^(x - max) / sum e^(x - max); stable for logits of +-1e4.
//   d/dx (vector-Jacobian) = out * (g - sum(g * out, axis))
Tensor softmax(const Tensor& x, int64_t axis = -1);
// log_softmax: out = x - logsumexp(x).   d/dx = g - softmax(x) * sum(g, axis)
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

}  // namespace ag
