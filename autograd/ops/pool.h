// Pooling over the two trailing (spatial) axes of channels-first images x [N, C, H, W].
//
// A window of kh x kw positions slides with stride s over x padded by p on each side; the output
// has OH = floor((H + 2p - kh) / s) + 1 rows (and OW columns alike). The stride defaults to the
// kernel size (pass 0). Errors: ShapeError naming the op and shapes for a non-4-D input or a
// window larger than the padded input; ValueError for a kernel or stride below 1, or a padding
// that is negative or more than half the kernel (a window could then see only padding).
#pragma once

#include <utility>

#include "autograd/ops/conv.h"
#include "autograd/tensor.h"

namespace ag {

// Max pooling: out[n, c, i, j] = max of x over window (i, j); padding never wins (it counts as
// -infinity). Ties: the first maximum in row-major order within the window wins (the smallest row,
// then the smallest column); a NaN in the window wins over every number, so NaN propagates.
//   d/dx = g sent to the position that won: scatter_add(zeros, g, at argmax), a recorded op, so
//   the second derivative (gather of the incoming gradient at the same positions) works too. When
//   the backward is not itself recorded, one direct scatter pass does it.
Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride = 0, Size2 padding = 0);
// The same, also returning the winners: int64 [N, C, OH, OW] holding each one's flat position
// h * W + w within its [H, W] plane.
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, Size2 kernel, Size2 stride = 0,
                                                  Size2 padding = 0);

// Average pooling: out = sum of x over the window / divisor, divisor = kh * kw when
// count_include_pad (padding counts as zeros, PyTorch's default) or the number of real positions
// in the window otherwise. Linear in x; computed as a depthwise conv2d with a constant kernel, so
//   d/dx = conv_transpose2d(g, the same kernel)   (each window's gradient spread evenly over it)
Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride = 0, Size2 padding = 0,
                  bool count_include_pad = true);

// Adaptive average pooling to a fixed output size (OH, OW) whatever H and W are: output row i
// averages input rows floor(i H / OH) .. ceil((i + 1) H / OH) - 1 (windows may overlap by one
// when OH does not divide H), columns alike. x [..., H, W] (at least 2-D) -> [..., OH, OW].
// Computed as Ah @ x @ Aw^T with the averaging matrices Ah [OH, H], Aw [OW, W], so
//   d/dx = Ah^T @ g @ Aw
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);

}  // namespace ag
