// Optimizer base: parameter groups (each with its own hyper-parameters), zero_grad, and state
// (per-parameter buffers such as momentum) that can be saved and restored.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "autograd/autograd.h"

namespace ag::nn {

// Hyper-parameters of one group, by name ("lr", "momentum", "weight_decay", "beta1", ...).
using Hyper = std::map<std::string, double>;

struct ParamGroup {
  std::vector<Tensor> params;
  Hyper options;
  double lr() const { return options.at("lr"); }
  void set_lr(double lr) { options["lr"] = lr; }
};

// Optimizer state as named tensors ("state.<group>.<index>.<buffer>") plus scalars
// ("group.<g>.<option>", "step"), so it can go into a checkpoint with the model.
struct OptimizerState {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, double> scalars;
};

class Optimizer {
 public:
  explicit Optimizer(Hyper defaults) : defaults_(std::move(defaults)) {}
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Adds a group; options it does not set come from the optimizer's defaults.
  void add_param_group(std::vector<Tensor> params, const Hyper& options = {});
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Sets lr of every group.
  void set_lr(double lr);

  // One update of every parameter that has a gradient (under NoGradGuard).
  virtual void step() = 0;
  void zero_grad(bool set_to_none = true);
  int64_t steps() const { return steps_; }

  OptimizerState state_dict() const;
  // Restores hyper-parameters and buffers; ValueError if the groups' sizes or shapes differ.
  void load_state_dict(const OptimizerState& state);

 protected:
  // Per-parameter named buffers, created on first use (zeros like the parameter).
  Tensor& buffer(size_t group, size_t index, const std::string& name, const Tensor& like);
  bool has_buffer(size_t group, size_t index, const std::string& name) const;
  double option(const ParamGroup& g, const char* name) const;
  int64_t steps_ = 0;

 private:
  Hyper defaults_;
  std::vector<ParamGroup> groups_;
  std::map<std::string, Tensor> state_;
};

}  // namespace ag::nn
