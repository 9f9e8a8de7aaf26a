// Indexing with int64 index tensors. Out-of-range indices raise IndexError naming the op, the index
// value and the size.
#pragma once

#include "autograd/tensor.h"

namespace ag {

// Rows of x along `axis` picked by a 1-D index: out.shape = x.shape with axis size = index.numel().
//   d/dx = index_add(zeros_like(x), axis, index, g)
Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index);
// out = x with g's slices added at `index` along axis (repeated indices accumulate).
//   d/dx = g, d/dsrc = index_select(g, axis, index)
Tensor index_add(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& src);
// out[i][j] = x[index[i][j]][j] (axis 0), etc.: index has x's rank, out has index's shape.
//   d/dx = scatter_add(zeros_like(x), axis, index, g)
Tensor gather(const Tensor& x, int64_t axis, const Tensor& index);
// out = x, then out[index[i][j]][j] += src[i][j] (axis 0), etc.
//   d/dx = g, d/dsrc = gather(g, axis, index)
Tensor scatter_add(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& src);
// Embedding lookup: weight [num, dim], indices [...] (int64) -> [..., dim]. Backward scatter-adds g
// into the rows of weight that were used.
Tensor embedding(const Tensor& weight, const Tensor& indices);
// One-hot encoding of int64 labels: [...] -> [..., num_classes] (float32).
Tensor one_hot(const Tensor& labels, int64_t num_classes, Dtype dtype = float32);

}  // namespace ag
