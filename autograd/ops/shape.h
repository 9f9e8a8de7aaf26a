// Shape and layout ops. Views share storage with their input (reshape of a contiguous tensor, view,
// transpose, permute, squeeze, unsqueeze, expand, slice, select); the others copy.
// Each backward is the inverse rearrangement of the gradient.
#pragma once

#include <vector>

#include "autograd/tensor.h"

namespace ag {

// Same elements, new shape (one size may be -1). A view when x is contiguous, else a copy.
// ShapeError if the element counts differ.
Tensor reshape(const Tensor& x, const Shape& shape);
// Like reshape but never copies: ShapeError if x's strides do not allow it.
Tensor view(const Tensor& x, const Shape& shape);
// Merges axes start..end into one.
Tensor flatten(const Tensor& x, int64_t start = 0, int64_t end = -1);
// Swaps two axes (a view).                  d/dx = transpose(g, a, b)
Tensor transpose(const Tensor& x, int64_t a, int64_t b);
// Reorders axes (a view).                   d/dx = permute(g, inverse order)
Tensor permute(const Tensor& x, const std::vector<int64_t>& order);
// Removes a size-1 axis / all size-1 axes; inserts one.
Tensor squeeze(const Tensor& x, int64_t axis);
Tensor squeeze(const Tensor& x);
Tensor unsqueeze(const Tensor& x, int64_t axis);
// Broadcasts to a larger shape without copying (stride 0); -1 keeps a size. d/dx = g summed back.
Tensor expand(const Tensor& x, const Shape& shape);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
// x[start:stop:step] along one axis (a view). Negative start/stop count from the end and are
// clamped like Python slices; step > 0.         d/dx = g placed back into zeros of x's shape
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step = 1);
// x[index] along an axis, removing it (a view).
Tensor select(const Tensor& x, int64_t axis, int64_t index);
// Joins tensors along an existing axis / a new axis.   d/dx_i = the matching slice of g
Tensor cat(const std::vector<Tensor>& xs, int64_t axis = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t axis = 0);
// Splits into pieces of `size` along an axis (last may be smaller) / into `chunks` near-equal
// pieces; an empty axis gives one empty piece, so cat(pieces, axis) is x again. Views of x, like
// slice; one recorded node for all pieces, whose backward concatenates their gradients (zeros for a
// piece that got none).
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t axis = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t axis = 0);
// Inverse of slice: zeros of `shape` with x written at [start:...:step] along axis (negative axis
// counts from the end). g must have shape's rank and exactly the slice's size (ShapeError).
Tensor slice_backward(const Tensor& g, const Shape& shape, int64_t axis, int64_t start,
                      int64_t step);
// Lower / upper triangle of the last two axes (others zeroed): k = diagonal offset.
Tensor tril(const Tensor& x, int64_t k = 0);
Tensor triu(const Tensor& x, int64_t k = 0);

}  // namespace ag
