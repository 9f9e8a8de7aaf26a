#include "nn/module.h"

#include <fmt/format.h>

#include <set>

namespace ag::nn {

bool name_matches(const std::string& name, const std::string& pattern) {
  // Iterative glob with backtracking to the last '*'.
  size_t n = 0, p = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++n;
      ++p;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Tensor Module::forward(const Tensor&) {
  fail<ValueError>("{}: this module has no one-tensor forward", type_name());
}

void Module::check_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos)
    fail<ValueError>("{}: invalid name '{}' (must be non-empty, without '.')", type_name(), name);
  for (auto& [n, _] : params_)
    if (n == name) fail<ValueError>("{}: name '{}' already registered", type_name(), name);
  for (auto& [n, _] : buffers_)
    if (n == name) fail<ValueError>("{}: name '{}' already registered", type_name(), name);
  for (auto& [n, _] : children_)
    if (n == name) fail<ValueError>("{}: name '{}' already registered", type_name(), name);
}

Tensor& Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_name(name);
  if (!value.is_leaf()) value = value.detach();
  value.requires_grad_(requires_grad);
  params_.emplace_back(name, value);
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  check_name(name);
  buffers_.emplace_back(name, value.detach());
  return buffers_.back().second;
}

void Module::remove_module(const std::string& name) {
  std::erase_if(children_, [&](const auto& c) { return c.first == name; });
}

void Module::collect(const std::string& prefix, bool params, bool recurse,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (auto& [n, t] : params ? params_ : buffers_) out.emplace_back(prefix + n, t);
  if (!recurse) return;
  for (auto& [n, m] : children_) m->collect(prefix + n + ".", params, true, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, recurse, out);
  // A parameter shared by two modules (tied weights) is listed once, under its first name.
  std::set<const void*> seen;
  std::vector<std::pair<std::string, Tensor>> unique;
  for (auto& p : out)
    if (seen.insert(p.second.identity()).second) unique.push_back(p);
  return unique;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, recurse, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> r;
  for (auto& [_, t] : named_parameters(recurse)) r.push_back(t);
  return r;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> r;
  for (auto& [_, m] : children_) r.push_back(m);
  return r;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (size_t i = 0; i < out.size(); ++i) {
    auto [prefix, m] = out[i];
    for (auto& [n, c] : m->children_)
      out.emplace_back(prefix.empty() ? n : prefix + "." + n, c.get());
  }
  return out;
}

std::vector<Generator*> Module::generators() {
  std::vector<Generator*> out;
  for (auto& [_, m] : named_modules())
    for (Generator* g : m->own_generators()) out.push_back(g);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, m] : children_) m->train(on);
}

void Module::zero_grad(bool set_to_none) {
  for (Tensor& p : parameters()) p.zero_grad(set_to_none);
}

void Module::to(Dtype dtype) {
  NoGradGuard ng;
  for (auto& [_, p] : named_parameters())
    if (is_floating(p.dtype()) && p.dtype() != dtype) {
      Tensor t = p;
      t.set_data(p.detach().to(dtype));
    }
  for (auto& [_, b] : named_buffers())
    if (is_floating(b.dtype()) && b.dtype() != dtype) {
      Tensor t = b;
      t.set_data(b.to(dtype));
    }
}

int64_t Module::frozen_to(Dtype dtype) {
  NoGradGuard ng;
  int64_t n = 0;
  for (auto& [_, p] : named_parameters())
    if (!p.requires_grad() && p.dtype() == float32 && p.dtype() != dtype) {
      Tensor t = p;
      t.set_data(p.detach().to(dtype));
      empty_buffer_cache();  // the float32 buffer just freed goes back to the system now
      ++n;
    }
  return n;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& [_, p] : named_parameters())
    if (!trainable_only || p.requires_grad()) n += p.numel();
  return n;
}

int64_t Module::freeze(const std::string& pattern) {
  int64_t changed = 0;
  for (auto& [name, p] : named_parameters())
    if (name_matches(name, pattern) && p.requires_grad()) {
      Tensor t = p;
      t.requires_grad_(false);
      ++changed;
    }
  return changed;
}

int64_t Module::unfreeze(const std::string& pattern) {
  int64_t changed = 0;
  for (auto& [name, p] : named_parameters())
    if (name_matches(name, pattern) && !p.requires_grad()) {
      Tensor t = p;
      t.requires_grad_(true);
      ++changed;
    }
  return changed;
}

StateDict Module::state_dict() const {
  StateDict s;
  collect("", true, true, s);
  std::set<std::string> names;
  for (auto& [n, _] : s) names.insert(n);
  auto b = named_buffers();
  s.insert(s.end(), b.begin(), b.end());
  return s;
}

void Module::complete_state_dict(const std::string&, StateDict&) const {}

LoadResult Module::load_state_dict(const StateDict& state_in, bool strict) {
  StateDict mine = state_dict();
  StateDict state = state_in;
  for (auto& [name, m] : named_modules())
    m->complete_state_dict(name.empty() ? name : name + ".", state);
  LoadResult r;
  std::map<std::string, const Tensor*> given;
  for (auto& [n, t] : state) given[n] = &t;
  std::set<std::string> known;
  for (auto& [n, t] : mine) {
    known.insert(n);
    auto it = given.find(n);
    if (it == given.end()) {
      r.missing.push_back(n);
    } else if (!(it->second->shape() == t.shape())) {
      r.mismatched.push_back(
          fmt::format("{}: checkpoint {} vs model {}", n, it->second->shape(), t.shape()));
    }
  }
  for (auto& [n, _] : state)
    if (!known.count(n)) r.unexpected.push_back(n);
  if (!r.mismatched.empty() || (strict && !r.ok())) {
    std::string msg = "load_state_dict: state dict does not fit the model";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      msg += fmt::format("; {} ({}): ", what, v.size());
      for (size_t i = 0; i < v.size(); ++i) msg += (i ? ", " : "") + v[i];
    };
    list("missing", r.missing);
    list("unexpected", r.unexpected);
    list("mismatched shapes", r.mismatched);
    throw ValueError(msg);
  }
  NoGradGuard ng;
  for (auto& [n, t] : mine) {
    auto it = given.find(n);
    if (it == given.end()) continue;
    Tensor dst = t;
    Tensor src = it->second->detach().to(dst.dtype()).contiguous();
    if (src.shares_storage(dst)) continue;
    dst.set_data(src.clone());
  }
  return r;
}

void Module::summary_lines(const std::string& name, int depth, std::string& out) const {
  int64_t own = 0;
  for (auto& [_, p] : params_) own += p.numel();
  out +=
      fmt::format("{:{}}{}{} ({}){}\n", "", depth * 2, name.empty() ? "" : name + ": ", type_name(),
                  num_parameters(), own && !children_.empty() ? fmt::format(", own {}", own) : "");
  for (auto& [n, m] : children_) m->summary_lines(n, depth + 1, out);
}

std::string Module::summary() const {
  std::string s;
  summary_lines("", 0, s);
  s += fmt::format("parameters: {} total, {} trainable\n", num_parameters(), num_parameters(true));
  return s;
}

}  // namespace ag::nn
