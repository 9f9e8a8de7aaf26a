// Activation modules: thin wrappers of the ag activation functions, for use in Sequential.
#pragma once

#include <string>

#include "nn/module.h"

namespace ag::nn {

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
  std::string type_name() const override { return "ReLU"; }
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double slope = 0.01) : slope(slope) {}
  Tensor forward(const Tensor& x) override { return leaky_relu(x, slope); }
  std::string type_name() const override { return "LeakyReLU"; }
  double slope;
};

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override { return tanh(x); }
  std::string type_name() const override { return "Tanh"; }
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
  std::string type_name() const override { return "Sigmoid"; }
};

class GELU : public Module {
 public:
  explicit GELU(std::string approximate = "none") : approximate(std::move(approximate)) {}
  Tensor forward(const Tensor& x) override { return gelu(x, approximate); }
  std::string type_name() const override { return "GELU"; }
  std::string approximate;
};

class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return silu(x); }
  std::string type_name() const override { return "SiLU"; }
};

class Softmax : public Module {
 public:
  explicit Softmax(int64_t axis = -1) : axis(axis) {}
  Tensor forward(const Tensor& x) override { return softmax(x, axis); }
  std::string type_name() const override { return "Softmax"; }
  int64_t axis;
};

// Builds an activation module by name: relu, leaky_relu, tanh, sigmoid, gelu, gelu_tanh, silu,
// identity. ValueError for other names.
std::shared_ptr<Module> make_activation(const std::string& name);

}  // namespace ag::nn
