// Printing tensors: `fmt::format("{}", t)`, `to_string(t)` and `std::cout << t` all show the values
// (nested brackets, row-major), then the shape, the dtype, and the op that made the tensor
// (grad_fn) or requires_grad for a leaf that has it:
//
//   tensor([[1.0000, 2.0000],
//           [3.0000, 4.0000]], shape=[2, 2], dtype=float32, grad_fn=mul)
//
// Tensors with more than `threshold` elements show the first and last `edge` entries of each axis
// with "..." between them.
#pragma once

#include <fmt/format.h>

#include <iosfwd>
#include <string>

#include "autograd/tensor.h"

namespace ag {

struct PrintOptions {
  int precision = 4;         // digits after the decimal point for floating values
  int64_t threshold = 1000;  // summarise above this many elements
  int64_t edge = 3;          // entries kept at each end of a summarised axis
};

std::string to_string(const Tensor& t, const PrintOptions& options = {});
std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace ag

template <>
struct fmt::formatter<ag::Tensor> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const ag::Tensor& t, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(ag::to_string(t), ctx);
  }
};
