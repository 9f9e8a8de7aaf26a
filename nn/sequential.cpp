#include "nn/sequential.h"

#include <typeinfo>

#include "nn/activation.h"
#include "nn/layers.h"
#include "nn/linear.h"

namespace ag::nn {

std::shared_ptr<Module> make_activation(const std::string& name) {
  if (name == "relu") return std::make_shared<ReLU>();
  if (name == "leaky_relu") return std::make_shared<LeakyReLU>();
  if (name == "tanh") return std::make_shared<Tanh>();
  if (name == "sigmoid") return std::make_shared<Sigmoid>();
  if (name == "gelu") return std::make_shared<GELU>();
  if (name == "gelu_tanh") return std::make_shared<GELU>("tanh");
  if (name == "silu") return std::make_shared<SiLU>();
  if (name == "identity") return std::make_shared<Identity>();
  fail<ValueError>(
      "make_activation: unknown activation '{}' (relu, leaky_relu, tanh, sigmoid, gelu, gelu_tanh, "
      "silu, identity)",
      name);
}

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (auto& m : modules) push_back(m);
}

Sequential& Sequential::push_back(std::shared_ptr<Module> module) {
  if (!module) fail<ValueError>("Sequential: null module");
  register_module(std::to_string(layers_.size()), module);
  layers_.push_back(std::move(module));
  return *this;
}

ModuleList& ModuleList::push_back(std::shared_ptr<Module> module) {
  if (!module) fail<ValueError>("ModuleList: null module");
  register_module(std::to_string(items_.size()), module);
  items_.push_back(std::move(module));
  return *this;
}

// A Linear (exactly, not a subclass that may override forward) followed by a ReLU runs as one
// op, linear_relu: the same values and gradients, without a separate ReLU pass over the output.
Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Module& m = *layers_[i];
    if (i + 1 < layers_.size() && typeid(m) == typeid(Linear) &&
        typeid(*layers_[i + 1]) == typeid(ReLU)) {
      h = static_cast<Linear&>(m).forward_relu(h);
      ++i;
    } else {
      h = m.forward(h);
    }
  }
  return h;
}

std::shared_ptr<Sequential> make_mlp(const std::vector<int64_t>& sizes,
                                     const std::string& activation, double dropout,
                                     Generator* gen) {
  if (sizes.size() < 2) fail<ValueError>("make_mlp: need at least input and output sizes");
  auto seq = std::make_shared<Sequential>();
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    seq->push_back(std::make_shared<Linear>(sizes[i], sizes[i + 1], true, gen));
    if (i + 2 < sizes.size()) {
      seq->push_back(make_activation(activation));
      if (dropout > 0) seq->push_back(std::make_shared<Dropout>(dropout));
    }
  }
  return seq;
}

}  // namespace ag::nn
