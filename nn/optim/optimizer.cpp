#include "nn/optim/optimizer.h"

#include <fmt/format.h>

namespace ag::nn {

void Optimizer::check_params(const std::vector<Tensor>& params) {
  for (const Tensor& p : params) {
    if (!p.defined()) fail<ValueError>("optimizer: undefined parameter");
    if (!p.is_leaf())
      fail<ValueError>("optimizer: can only optimize leaf tensors (parameter of shape {})",
                       p.shape());
  }
}

void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < num_groups(); ++g) set_lr(g, lr);
}

void Optimizer::zero_grad(bool set_to_none) {
  for (size_t g = 0; g < num_groups(); ++g)
    for (const Tensor& p : params(g)) Tensor(p).zero_grad(set_to_none);
}

Tensor& Optimizer::buffer(size_t group, size_t index, const std::string& name, const Tensor& like) {
  std::string key = fmt::format("state.{}.{}.{}", group, index, name);
  auto it = state_.find(key);
  if (it == state_.end()) {
    const bool half = state_dtype_ == bfloat16 && like.dtype() == float32;
    it = state_.emplace(key, zeros(like.shape(), half ? bfloat16 : like.dtype())).first;
  }
  return it->second;
}

void Optimizer::set_state_dtype(Dtype dtype) {
  if (dtype != float32 && dtype != bfloat16)
    fail<ValueError>("optimizer: state dtype must be float32 or bfloat16, got {}",
                     dtype_name(dtype));
  state_dtype_ = dtype;
}

bool Optimizer::has_buffer(size_t group, size_t index, const std::string& name) const {
  return state_.count(fmt::format("state.{}.{}.{}", group, index, name)) > 0;
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState s;
  for (auto& [k, t] : state_) s.tensors.emplace_back(k, t);
  s.scalars["step"] = static_cast<double>(steps_);
  for (size_t g = 0; g < num_groups(); ++g) {
    for (auto& [k, v] : options_as_numbers(g)) s.scalars[fmt::format("group.{}.{}", g, k)] = v;
    s.scalars[fmt::format("group.{}.size", g)] = static_cast<double>(params(g).size());
  }
  return s;
}

void Optimizer::load_state_dict(const OptimizerState& s) {
  for (size_t g = 0; g < num_groups(); ++g) {
    auto it = s.scalars.find(fmt::format("group.{}.size", g));
    if (it == s.scalars.end() || static_cast<size_t>(it->second) != params(g).size())
      fail<ValueError>("optimizer load_state_dict: group {} has {} parameters, the state has {}", g,
                       params(g).size(),
                       it == s.scalars.end() ? std::string("none") : fmt::format("{}", it->second));
  }
  std::map<std::string, Tensor> restored;
  for (auto& [k, t] : s.tensors) {
    size_t g, i;
    char name[64];
    if (std::sscanf(k.c_str(), "state.%zu.%zu.%63s", &g, &i, name) != 3 || g >= num_groups() ||
        i >= params(g).size())
      fail<ValueError>("optimizer load_state_dict: unexpected entry '{}'", k);
    const Tensor& p = params(g)[i];
    // Buffers are shaped like their parameter, or 0-d per-parameter scalars (Adam's step count,
    // kept in its own dtype).
    bool scalar = t.dim() == 0;
    if (!scalar && !(t.shape() == p.shape()))
      fail<ValueError>("optimizer load_state_dict: '{}' has shape {} but the parameter has {}", k,
                       t.shape(), p.shape());
    const Dtype d = state_dtype_ == bfloat16 && p.dtype() == float32 ? bfloat16 : p.dtype();
    restored[k] = scalar ? t.detach().clone() : t.detach().to(d).clone();
  }
  for (size_t g = 0; g < num_groups(); ++g) {
    const std::string prefix = fmt::format("group.{}.", g);
    std::map<std::string, double> values;
    for (auto& [k, v] : s.scalars)
      if (k.starts_with(prefix)) values[k.substr(prefix.size())] = v;
    set_options_from_numbers(g, values);
  }
  auto st = s.scalars.find("step");
  steps_ = st == s.scalars.end() ? 0 : static_cast<int64_t>(st->second);
  state_ = std::move(restored);
}

}  // namespace ag::nn
