// Sequential: applies its modules in order (named "0", "1", ...). MLP: a Sequential of Linear
// layers with an activation between them (none after the last).
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"

namespace ag::nn {

class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  // Appends a module and returns *this (chainable).
  Sequential& push_back(std::shared_ptr<Module> module);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
  size_t size() const { return layers_.size(); }
  std::shared_ptr<Module> operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

// A list of submodules named "0", "1", ... (no forward of its own): the layers of a bigger model.
class ModuleList : public Module {
 public:
  ModuleList& push_back(std::shared_ptr<Module> module);
  std::string type_name() const override { return "ModuleList"; }
  size_t size() const { return items_.size(); }
  std::shared_ptr<Module> operator[](size_t i) const { return items_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

// MLP with the given layer sizes ({784, 128, 10}: two Linear layers) and activation name (see
// make_activation); dropout after each hidden activation when p > 0.
std::shared_ptr<Sequential> make_mlp(const std::vector<int64_t>& sizes,
                                     const std::string& activation = "relu", double dropout = 0.0,
                                     Generator* gen = nullptr);

}  // namespace ag::nn
