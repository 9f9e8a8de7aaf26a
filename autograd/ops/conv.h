// Convolutions and padding, on channels-first tensors: [N, C, L] (1-D) and [N, C, H, W] (2-D).
//
// Notation. x [N, C, H, W] is the input, w [K, C/G, kh, kw] the weight of K filters over C/G input
// channels each (G = groups: input and output channels are split into G groups and group j of the
// output only sees group j of the input; G = C = K is a depthwise convolution), s the stride, p
// the zero padding on each side, d the dilation. The output [N, K, OH, OW] is
//   out[n, k, i, j] = b[k] + sum_{c, u, v} w[k, c, u, v] * xpad[n, g*C/G + c, i*s + u*d, j*s + v*d]
//   OH = floor((H + 2p - d(kh - 1) - 1) / s) + 1   (and OW alike)
// with g = k / (K/G) the output channel's group and xpad x padded with zeros.
//
// The convolution is linear in x and in w, so its derivatives are convolutions again:
//   d/dx = conv_transpose2d(g, w)               (the adjoint of "convolve with w")
//   d/dw = conv2d_weight(x, g)                  (correlation of the input with the gradient)
//   d/db = sum of g over n, i, j
// and these two are themselves written with conv2d, conv_transpose2d and conv2d_weight, so every
// order of derivative is a convolution (double backward works with no extra code).
//
// Kernels: im2col + GEMM (OpenBLAS). Each sample's receptive fields are unrolled into a
// [C/G * kh * kw, OH * OW] matrix, multiplied by the group's [K/G, C/G * kh * kw] weight; the
// input gradient runs the same GEMM transposed and folds the columns back (col2im); the weight
// gradient accumulates gradient @ columns^T per thread. Samples are spread over OpenMP threads,
// each GEMM single-threaded.
//
// Errors (ShapeError naming the op and the shapes): conv2d on a non-4-D input or weight, a channel
// count that does not match the weight, groups that do not divide the channels, a kernel larger
// than the padded input; ValueError for a stride or dilation below 1, negative padding, or
// padding "same" with a stride other than 1.
#pragma once

#include <concepts>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace ag {

// A size given for both spatial axes (an integer) or for each (height, width).
struct Size2 {
  int64_t h = 0, w = 0;
  template <std::integral I>
  Size2(I v) : h(v), w(v) {}  // NOLINT: conv2d(x, w, b, 2) means stride 2 on both axes
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
};

// Padding of a convolution: zeros on each side (an integer or (height, width)), or "valid" (no
// padding) or "same" (stride 1 only: the output keeps the input's size; when d(k - 1) is odd the
// extra row or column of zeros goes at the bottom or right, as PyTorch does).
struct ConvPadding {
  Size2 size = 0;
  bool same = false;
  template <std::integral I>
  ConvPadding(I v) : size(v) {}      // NOLINT
  ConvPadding(Size2 s) : size(s) {}  // NOLINT
  ConvPadding(int64_t h, int64_t w) : size(h, w) {}
  ConvPadding(const char* mode);         // NOLINT: "same" or "valid"
  ConvPadding(const std::string& mode);  // NOLINT
};

// 2-D convolution (cross-correlation, as in every deep-learning library):
//   x [N, C, H, W], weight [K, C/groups, kh, kw], bias [K] or undefined -> [N, K, OH, OW].
// Formula, derivatives and errors at the top of this file.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              Size2 stride = 1, ConvPadding padding = 0, Size2 dilation = 1, int64_t groups = 1);

// 1-D convolution: x [N, C, L], weight [K, C/groups, k], bias [K] -> [N, K, OL]. Computed as a
// conv2d over a height of 1 (so its derivatives are conv2d's).
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              int64_t stride = 1, ConvPadding padding = 0, int64_t dilation = 1,
              int64_t groups = 1);

// Transposed 2-D convolution (the adjoint of conv2d in its input, sometimes called
// "deconvolution"): every input pixel scatters a weighted copy of the kernel into the output.
//   x [N, Cin, H, W], weight [Cin, Cout/groups, kh, kw], bias [Cout] -> [N, Cout, OH, OW],
//   OH = (H - 1) s - 2p + d (kh - 1) + output_padding + 1
// It equals the input gradient of conv2d(y, weight, stride, padding, dilation, groups) for a y of
// the output's size. output_padding (< stride or < dilation) picks among the output sizes that
// such a conv2d maps to H.
//   d/dx = conv2d(g, weight),  d/dweight = conv2d_weight(g, x),  d/dbias = sum of g over n, i, j
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        Size2 stride = 1, Size2 padding = 0, Size2 output_padding = 0,
                        int64_t groups = 1, Size2 dilation = 1);

// The weight gradient of conv2d as an op of its own: for x [N, C, H, W] and a gradient g
// [N, K, OH, OW] of conv2d's output, the [K, C/groups, kh, kw] tensor
//   out[k, c, u, v] = sum_{n, i, j} g[n, k, i, j] * xpad[n, group(k)*C/G + c, i*s + u*d, j*s + v*d]
// It is bilinear: with h the gradient of out,
//   d/dx = conv_transpose2d(g, h) (sized like x),  d/dg = conv2d(x, h)
Tensor conv2d_weight(const Tensor& x, const Tensor& g, int64_t kh, int64_t kw, Size2 stride = 1,
                     Size2 padding = 0, Size2 dilation = 1, int64_t groups = 1);

// Pads the trailing axes of x. `pads` lists (before, after) pairs starting from the LAST axis, as
// PyTorch's F.pad: {left, right} pads the last axis, {left, right, top, bottom} the last two.
//   mode "constant": the new entries are `value`.   d/dx = g with the padding cut off
//   mode "reflect": mirrored about the edge without repeating it ([a b c d], 2 each side:
//   [c b a b c d c b]); each pad must be smaller than its axis. d/dx = g's entries added back to
//   the entries they were copied from
// Pads must be >= 0 (ValueError); ShapeError if they name more axes than x has.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode = "constant",
           double value = 0.0);

}  // namespace ag
