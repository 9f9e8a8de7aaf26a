#include "nn/conv.h"

#include <cmath>

#include "nn/init.h"

namespace ag::nn {

namespace {

void check_channels(const char* layer, int64_t in, int64_t out, int64_t groups) {
  if (in <= 0 || out <= 0 || groups <= 0)
    fail<ValueError>("{}: channels and groups must be positive, got in {} out {} groups {}", layer,
                     in, out, groups);
  if (in % groups != 0 || out % groups != 0)
    fail<ValueError>("{}: groups {} must divide both in_channels {} and out_channels {}", layer,
                     groups, in, out);
}

// PyTorch's default: kaiming_uniform(a = sqrt(5)) for the weight, U(+-1/sqrt(fan_in)) for the bias.
void init_conv(Tensor& weight, Tensor& bias, Generator* gen) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), "fan_in", "leaky_relu", gen);
  if (bias.defined()) {
    const double b = 1.0 / std::sqrt(static_cast<double>(init::fans(weight).first));
    init::uniform_(bias, -b, b, gen);
  }
}

}  // namespace

Conv1d::Conv1d(int64_t in, int64_t out, int64_t k, int64_t stride, ConvPadding padding,
               int64_t dilation, int64_t groups, bool with_bias, Generator* gen)
    : in_channels(in),
      out_channels(out),
      kernel_size(k),
      stride(stride),
      dilation(dilation),
      groups(groups),
      padding(padding) {
  check_channels("Conv1d", in, out, groups);
  if (k <= 0) fail<ValueError>("Conv1d: kernel_size must be positive, got {}", k);
  weight = register_parameter("weight", Tensor::empty({out, in / groups, k}));
  if (with_bias) bias = register_parameter("bias", Tensor::empty({out}));
  init_conv(weight, bias, gen);
}

Tensor Conv1d::forward(const Tensor& x) {
  return conv1d(x, weight, bias, stride, padding, dilation, groups);
}

Conv2d::Conv2d(int64_t in, int64_t out, Size2 k, Size2 stride, ConvPadding padding, Size2 dilation,
               int64_t groups, bool with_bias, Generator* gen)
    : in_channels(in),
      out_channels(out),
      kernel_size(k),
      stride(stride),
      dilation(dilation),
      padding(padding),
      groups(groups) {
  check_channels("Conv2d", in, out, groups);
  if (k.h <= 0 || k.w <= 0)
    fail<ValueError>("Conv2d: kernel_size must be positive, got ({}, {})", k.h, k.w);
  weight = register_parameter("weight", Tensor::empty({out, in / groups, k.h, k.w}));
  if (with_bias) bias = register_parameter("bias", Tensor::empty({out}));
  init_conv(weight, bias, gen);
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, stride, padding, dilation, groups);
}

ConvTranspose2d::ConvTranspose2d(int64_t in, int64_t out, Size2 k, Size2 stride, Size2 padding,
                                 Size2 output_padding, int64_t groups, bool with_bias,
                                 Size2 dilation, Generator* gen)
    : in_channels(in),
      out_channels(out),
      kernel_size(k),
      stride(stride),
      padding(padding),
      output_padding(output_padding),
      groups(groups),
      dilation(dilation) {
  check_channels("ConvTranspose2d", in, out, groups);
  if (k.h <= 0 || k.w <= 0)
    fail<ValueError>("ConvTranspose2d: kernel_size must be positive, got ({}, {})", k.h, k.w);
  weight = register_parameter("weight", Tensor::empty({in, out / groups, k.h, k.w}));
  if (with_bias) bias = register_parameter("bias", Tensor::empty({out}));
  init_conv(weight, bias, gen);
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation);
}

}  // namespace ag::nn
