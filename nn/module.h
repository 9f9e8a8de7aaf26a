// Module: the base of every layer and model. It owns named parameters (leaf tensors that require
// grad), buffers (state that is saved but not trained) and submodules, and gives them hierarchical
// names ("blocks.0.attn.qkv.weight") for optimizers, freezing and checkpoints.
//
// Modules are held by std::shared_ptr; a model is a tree of them. Everything here is written
// against the public autograd API: backprop through a model is nothing but the engine's replay of
// its tape.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"

namespace ag::nn {

// Ordered name -> tensor map (parameters and buffers), as saved in checkpoints.
using StateDict = std::vector<std::pair<std::string, Tensor>>;

// What load_state_dict found (strict loading throws a ValueError listing all three instead).
struct LoadResult {
  std::vector<std::string> missing;     // in the module, not in the state dict
  std::vector<std::string> unexpected;  // in the state dict, not in the module
  std::vector<std::string> mismatched;  // both, but shapes differ ("name: [2, 3] vs [3, 2]")
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
};

// Glob match with '*' (any run of characters) and '?' (one character), used for name patterns.
bool name_matches(const std::string& name, const std::string& pattern);

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  // This module's own random generators, not its children's (see generators()). Modules that draw
  // random numbers from generators they hold override it.
  virtual std::vector<Generator*> own_generators() { return {}; }

  // One-tensor forward; modules with other signatures define their own call operator.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  // Type name for printing ("Linear").
  virtual std::string type_name() const { return "Module"; }

  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  std::vector<std::shared_ptr<Module>> children() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  // Every module of the tree with its dotted name ("" for this one), parents before children.
  std::vector<std::pair<std::string, Module*>> named_modules();
  // The random generators the modules of the tree draw from (Dropout's, attention dropout's),
  // parents first: what ag::checkpoint (autograd/checkpoint.h) must save and set back to recompute
  // this module's forward with the same dropout masks.
  std::vector<Generator*> generators();

  // Training mode (dropout active) or evaluation mode, for the whole tree.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Drops (or zeroes) the .grad of every parameter.
  void zero_grad(bool set_to_none = true);
  // Converts every parameter and buffer to dtype in place (handles held elsewhere see the change).
  void to(Dtype dtype);
  // Converts the frozen parameters (requires_grad off) that are float32 to dtype in place, and
  // nothing else: with bfloat16, the storage of the weights a LoRA or partial fine-tune does not
  // train is halved, while the trained ones stay float32 (master weights for mixed precision).
  // Each freed float32 buffer is returned to the system at once (the peak stays at the float32
  // model plus one tensor). Returns how many parameters changed.
  int64_t frozen_to(Dtype dtype);
  // Number of parameter elements (only those that require grad if trainable_only).
  int64_t num_parameters(bool trainable_only = false) const;
  // Turns requires_grad off (freeze) or on for every parameter, or those whose name matches a glob
  // pattern ("blocks.*.attn.*"). Returns how many parameters changed.
  int64_t freeze(const std::string& pattern = "*");
  int64_t unfreeze(const std::string& pattern = "*");

  // Parameters and buffers by dotted name.
  StateDict state_dict() const;
  // Copies values in (shape-checked). strict: every name must match both ways, else ValueError
  // listing missing, unexpected and mis-shaped entries; nothing is modified unless all fit.
  // Each module of the tree may first add entries an older format lacked (complete_state_dict).
  LoadResult load_state_dict(const StateDict& state, bool strict = true);

  // A one-line-per-module summary of the tree with parameter counts.
  std::string summary() const;

 protected:
  // Registers a parameter (a leaf; requires_grad set unless frozen) and returns it.
  Tensor& register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  Tensor& register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    check_name(name);
    children_.emplace_back(name, module);
    return module;
  }
  // Removes a registered submodule (no-op if absent).
  void remove_module(const std::string& name);
  // Called by load_state_dict on every module of the tree, with the module's dotted prefix ("" or
  // "features.1.") and the state being loaded: a module may append entries that checkpoints of an
  // older version lack (BatchNorm's num_batches_tracked). Does nothing by default.
  virtual void complete_state_dict(const std::string& prefix, StateDict& state) const;

 private:
  void check_name(const std::string& name) const;
  void collect(const std::string& prefix, bool params, bool recurse,
               std::vector<std::pair<std::string, Tensor>>& out) const;
  void summary_lines(const std::string& name, int depth, std::string& out) const;

  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace ag::nn
