// Convolution layers: Conv1d, Conv2d and ConvTranspose2d (ops in autograd/ops/conv.h).
//
// Initialised as PyTorch does: weight ~ U(-b, b) with b = 1/sqrt(fan_in) (kaiming_uniform with
// a = sqrt(5)), bias ~ U(-b, b) with the same fan_in = weight.size(1) * kh * kw (for a conv,
// in_channels/groups * kernel area; for a transposed conv, out_channels/groups * kernel area, since
// its weight is [in, out/groups, kh, kw]).
#pragma once

#include <string>

#include "nn/module.h"

namespace ag::nn {

// x [N, in, L] -> [N, out, OL]; weight [out, in/groups, k], bias [out].
class Conv1d : public Module {
 public:
  Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
         ConvPadding padding = 0, int64_t dilation = 1, int64_t groups = 1, bool bias = true,
         Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv1d"; }
  int64_t in_channels, out_channels, kernel_size, stride, dilation, groups;
  ConvPadding padding;
  Tensor weight, bias;  // bias undefined without bias
};

// x [N, in, H, W] -> [N, out, OH, OW]; weight [out, in/groups, kh, kw], bias [out].
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Size2 stride = 1,
         ConvPadding padding = 0, Size2 dilation = 1, int64_t groups = 1, bool bias = true,
         Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  int64_t in_channels, out_channels;
  Size2 kernel_size, stride, dilation;
  ConvPadding padding;
  int64_t groups;
  Tensor weight, bias;
};

// x [N, in, H, W] -> [N, out, OH, OW], OH = (H - 1) stride - 2 padding + dilation (kh - 1) +
// output_padding + 1; weight [in, out/groups, kh, kw], bias [out].
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Size2 stride = 1,
                  Size2 padding = 0, Size2 output_padding = 0, int64_t groups = 1, bool bias = true,
                  Size2 dilation = 1, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ConvTranspose2d"; }
  int64_t in_channels, out_channels;
  Size2 kernel_size, stride, padding, output_padding;
  int64_t groups;
  Size2 dilation;
  Tensor weight, bias;
};

}  // namespace ag::nn
