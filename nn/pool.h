// Pooling layers and Flatten (ops in autograd/ops/pool.h). No parameters.
#pragma once

#include <string>

#include "nn/module.h"

namespace ag::nn {

// max_pool2d over kernel_size windows; stride defaults to the kernel size (0).
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2 kernel_size, Size2 stride = 0, Size2 padding = 0)
      : kernel_size(kernel_size), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, kernel_size, stride, padding); }
  std::string type_name() const override { return "MaxPool2d"; }
  Size2 kernel_size, stride, padding;
};

// avg_pool2d; count_include_pad as in PyTorch (padding counted as zeros in the divisor).
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel_size, Size2 stride = 0, Size2 padding = 0,
                     bool count_include_pad = true)
      : kernel_size(kernel_size),
        stride(stride),
        padding(padding),
        count_include_pad(count_include_pad) {}
  Tensor forward(const Tensor& x) override {
    return avg_pool2d(x, kernel_size, stride, padding, count_include_pad);
  }
  std::string type_name() const override { return "AvgPool2d"; }
  Size2 kernel_size, stride, padding;
  bool count_include_pad;
};

// adaptive_avg_pool2d to a fixed output size, whatever the input's.
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size) : output_size(output_size) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, output_size); }
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  Size2 output_size;
};

// Merges axes start_dim..end_dim into one (default: all but the batch axis, [N, C, H, W] ->
// [N, C*H*W]), as PyTorch's nn.Flatten.
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override { return flatten(x, start_dim, end_dim); }
  std::string type_name() const override { return "Flatten"; }
  int64_t start_dim, end_dim;
};

}  // namespace ag::nn
