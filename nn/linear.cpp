#include "nn/linear.h"

#include <cmath>

#include "nn/init.h"

namespace ag::nn {

Linear::Linear(int64_t in, int64_t out, bool with_bias, Generator* gen)
    : in_features(in), out_features(out) {
  if (in <= 0 || out <= 0)
    fail<ValueError>("Linear: sizes must be positive, got in {} out {}", in, out);
  weight = register_parameter("weight", Tensor::empty({out, in}));
  init::kaiming_uniform_(weight, std::sqrt(5.0), "fan_in", "leaky_relu", gen);
  if (with_bias) {
    bias = register_parameter("bias", Tensor::empty({out}));
    double b = 1.0 / std::sqrt(static_cast<double>(in));
    init::uniform_(bias, -b, b, gen);
  }
}

Tensor Linear::forward(const Tensor& x) {
  Tensor y = linear(x, weight, bias);
  if (adapter) y = add(y, adapter->forward(x));
  return y;
}

Tensor Linear::forward_relu(const Tensor& x) {
  return adapter ? relu(forward(x)) : linear_relu(x, weight, bias);
}

std::shared_ptr<Linear> normal_linear(int64_t in, int64_t out, double std, Generator* gen) {
  auto l = std::make_shared<Linear>(in, out, true, gen);
  init::normal_(l->weight, 0.0, std, gen);
  init::zeros_(l->bias);
  return l;
}

}  // namespace ag::nn
