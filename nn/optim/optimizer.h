// Optimizers: the base every optimizer derives from.
//
// An optimizer holds parameter groups, each a list of leaf tensors with its own hyper-parameters,
// and per-parameter state (momentum, moments, step counts) as named buffers. Its step() reads
// each parameter's .grad and updates the parameter in place, unrecorded. State and
// hyper-parameters can be saved and restored (checkpoints: nn/checkpoint.h).
//
// Hyper-parameters are a typed struct per optimizer (SGDOptions, AdamOptions, ...), written once.
// An optimizer of your own derives from OptimizerWith<YourOptions>, implements step() with
// ag::foreach_update_ (autograd/foreach.h) over its groups, and gives its options struct
//   double lr;                                   (every optimizer has a learning rate)
//   template <class Self, class F> static void fields(Self& o, F&& f)
//     { f("lr", o.lr); f("momentum", o.momentum); ... }   (each field once, double or bool)
//   void validate() const;                       (ValueError for values it cannot use)
// docs/contributing.md walks through one.
#pragma once

#include <concepts>
#include <map>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/foreach.h"

namespace ag::nn {

// Optimizer state as named tensors ("state.<group>.<index>.<buffer>") plus scalars
// ("group.<g>.<option>", "group.<g>.size", "step"), so it can go into a checkpoint with the model.
struct OptimizerState {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, double> scalars;
};

// The interface every optimizer has, whatever its options: what schedulers, checkpoints and
// training loops use.
class Optimizer {
 public:
  Optimizer() = default;
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient (under NoGradGuard).
  virtual void step() = 0;
  // Clears (set_to_none, as PyTorch's optimizers do) or zeroes every parameter's .grad.
  void zero_grad(bool set_to_none = true);
  // The number of step() calls so far (restored by load_state_dict).
  int64_t steps() const { return steps_; }

  virtual size_t num_groups() const = 0;
  virtual const std::vector<Tensor>& params(size_t group) const = 0;
  virtual double lr(size_t group) const = 0;
  virtual void set_lr(size_t group, double lr) = 0;
  // Sets the learning rate of every group.
  void set_lr(double lr);
  // The dtype of the state buffers (momenta, moments) of float32 parameters: float32 (the
  // default) or bfloat16, which halves them; the update still computes in float32 (foreach_update_
  // reads bfloat16 exactly and rounds what it writes). Applies to buffers made after the call: set
  // it before the first step(). ValueError for another dtype.
  void set_state_dtype(Dtype dtype);
  Dtype state_dtype() const { return state_dtype_; }

  OptimizerState state_dict() const;
  // Restores hyper-parameters and buffers; ValueError if the groups' sizes or buffer shapes
  // differ from this optimizer's, or an entry names no parameter. Nothing changes on an error.
  void load_state_dict(const OptimizerState& state);

 protected:
  // Per-parameter named buffers, created on first use (zeros like `like`).
  Tensor& buffer(size_t group, size_t index, const std::string& name, const Tensor& like);
  bool has_buffer(size_t group, size_t index, const std::string& name) const;
  // ValueError unless every tensor is a defined leaf.
  static void check_params(const std::vector<Tensor>& params);
  // A group's hyper-parameters as named numbers (bools as 0 / 1), and back.
  virtual std::map<std::string, double> options_as_numbers(size_t group) const = 0;
  virtual void set_options_from_numbers(size_t group, const std::map<std::string, double>& v) = 0;
  int64_t steps_ = 0;

 private:
  std::map<std::string, Tensor> state_;
  Dtype state_dtype_ = float32;
};

// A parameter group: its tensors and its hyper-parameters.
template <class Options>
struct ParamGroup {
  std::vector<Tensor> params;
  Options options;
  double lr() const { return options.lr; }
  void set_lr(double lr) { options.lr = lr; }
};

// The base of an optimizer whose hyper-parameters are an Options struct (see the top of this
// file): groups, defaults, and the typed options' conversion to named numbers for checkpoints.
template <class Options>
class OptimizerWith : public Optimizer {
 public:
  using Group = ParamGroup<Options>;

  explicit OptimizerWith(const Options& defaults) : defaults_(defaults) { defaults_.validate(); }

  // Adds a group with the optimizer's default options, with the given options, or with the
  // defaults as changed by edit (e.g. [](AdamOptions& o) { o.weight_decay = 0; }).
  void add_param_group(std::vector<Tensor> params) {
    add_param_group(std::move(params), defaults_);
  }
  void add_param_group(std::vector<Tensor> params, const Options& options) {
    check_params(params);
    options.validate();
    groups_.push_back(Group{std::move(params), options});
  }
  template <class Edit>
  requires std::invocable<Edit, Options&>
  void add_param_group(std::vector<Tensor> params, Edit edit) {
    Options o = defaults_;
    edit(o);
    add_param_group(std::move(params), o);
  }

  std::vector<Group>& param_groups() { return groups_; }
  const std::vector<Group>& param_groups() const { return groups_; }
  const Options& defaults() const { return defaults_; }

  size_t num_groups() const override { return groups_.size(); }
  const std::vector<Tensor>& params(size_t g) const override { return groups_.at(g).params; }
  double lr(size_t g) const override { return groups_.at(g).options.lr; }
  void set_lr(size_t g, double lr) override { groups_.at(g).options.lr = lr; }
  using Optimizer::set_lr;

 protected:
  std::map<std::string, double> options_as_numbers(size_t g) const override {
    std::map<std::string, double> out;
    Options::fields(groups_.at(g).options,
                    [&](const char* name, const auto& v) { out[name] = static_cast<double>(v); });
    return out;
  }
  void set_options_from_numbers(size_t g, const std::map<std::string, double>& in) override {
    Options::fields(groups_.at(g).options, [&](const char* name, auto& v) {
      auto it = in.find(name);
      if (it == in.end()) return;
      if constexpr (std::is_same_v<std::decay_t<decltype(v)>, bool>)
        v = it->second != 0;
      else
        v = it->second;
    });
  }

 private:
  Options defaults_;
  std::vector<Group> groups_;
};

}  // namespace ag::nn
