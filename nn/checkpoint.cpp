#include "nn/checkpoint.h"

#include <cstdlib>

namespace ag::nn {
namespace {

constexpr const char* kOptimizerPrefix = "optimizer/";

}  // namespace

void save_checkpoint(const std::string& path, const Module& module, const Optimizer* optimizer,
                     const Metadata& metadata) {
  const std::string prefix = kOptimizerPrefix;
  for (auto& [k, _] : metadata)
    if (k.starts_with(prefix))
      fail<ValueError>("save_checkpoint: '{}': metadata key '{}' uses the reserved prefix '{}'",
                       path, k, prefix);
  StateDict tensors = module.state_dict();
  Metadata meta = metadata;
  if (optimizer) {
    OptimizerState state = optimizer->state_dict();
    for (auto& [k, t] : state.tensors) tensors.emplace_back(prefix + k, t);
    // fmt's shortest representation reads back to the same double.
    for (auto& [k, v] : state.scalars) meta[prefix + k] = fmt::format("{}", v);
  }
  save_safetensors(path, tensors, meta);
}

CheckpointInfo load_checkpoint(const std::string& path, Module& module, Optimizer* optimizer,
                               bool strict) {
  const std::string prefix = kOptimizerPrefix;
  Metadata meta;
  StateDict all = load_safetensors(path, &meta);

  CheckpointInfo info;
  StateDict model_state;
  OptimizerState optimizer_state;
  bool has_optimizer = false;
  for (auto& [k, t] : all)
    if (k.starts_with(prefix))
      optimizer_state.tensors.emplace_back(k.substr(prefix.size()), t);
    else
      model_state.emplace_back(k, t);
  for (auto& [k, v] : meta) {
    if (!k.starts_with(prefix)) {
      info.metadata[k] = v;
      continue;
    }
    has_optimizer = true;
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0')
      fail<IOError>("load_checkpoint: '{}': metadata '{}' is '{}', not a number", path, k, v);
    optimizer_state.scalars[k.substr(prefix.size())] = x;
  }
  if (optimizer && !has_optimizer)
    fail<ValueError>("load_checkpoint: '{}' holds no optimizer state (saved without an optimizer)",
                     path);

  // The optimizer checks its state before changing anything; if the model then refuses its part,
  // the optimizer gets its previous state back.
  try {
    OptimizerState previous;
    if (optimizer) {
      previous = optimizer->state_dict();
      optimizer->load_state_dict(optimizer_state);
    }
    try {
      info.model = module.load_state_dict(model_state, strict);
    } catch (...) {
      if (optimizer) optimizer->load_state_dict(previous);
      throw;
    }
  } catch (const ValueError& e) {
    fail<ValueError>("load_checkpoint: '{}': {}", path, e.what());
  }
  return info;
}

}  // namespace ag::nn
