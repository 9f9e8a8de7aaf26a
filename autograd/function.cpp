#include "autograd/function.h"

#include "autograd/engine.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace ag {

void FunctionContext::save_for_backward(const TensorList& tensors) {
  if (node_) fail<AutogradError>("{}: save_for_backward can only be called in forward", op_name_);
  to_save_.insert(to_save_.end(), tensors.begin(), tensors.end());
}

TensorList FunctionContext::saved_tensors() const {
  if (!node_) return to_save_;
  if (node_->released()) node_->fail_released();
  TensorList r;
  r.reserve(node_->saved_tensors.size());
  for (size_t i = 0; i < node_->saved_tensors.size(); ++i) r.push_back(node_->saved(i));
  return r;
}

void FunctionContext::mark_non_differentiable(const TensorList& outputs) {
  for (const Tensor& t : outputs)
    if (t.defined()) non_differentiable_.push_back(t.impl());
}

bool FunctionContext::needs_input_grad(size_t i) const {
  if (i >= needs_input_grad_.size())
    fail<IndexError>("{}: needs_input_grad({}) asked, but forward has {} tensor inputs", op_name_,
                     i, needs_input_grad_.size());
  return needs_input_grad_[i];
}

void FunctionContext::bad_value(const std::string& key, const std::type_info& requested) const {
  auto it = values_.find(key);
  if (it == values_.end())
    fail<ValueError>(
        "{}: no value '{}' was stored in the context (ctx.set(\"{}\", value) in forward)", op_name_,
        key, key);
  fail<ValueError>("{}: context value '{}' holds a {}, not the {} requested", op_name_, key,
                   detail::demangle(it->second.type().name()), detail::demangle(requested.name()));
}

namespace detail {

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> raw(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  std::string name = status == 0 && raw ? std::string(raw.get()) : std::string(mangled);
  // "(anonymous namespace)::ns::Softsign" -> "Softsign"; template names are kept whole.
  if (name.find('<') == std::string::npos) {
    size_t colon = name.rfind("::");
    if (colon != std::string::npos) name = name.substr(colon + 2);
  }
  return name;
}

void CustomFunctionNode::connect(const TensorList& inputs, TensorList& outputs,
                                 const std::source_location& loc) {
  ctx.node_ = this;
  diagnostics.recorded_at = fmt::format("{}:{}", loc.file_name(), loc.line());

  std::vector<const Tensor*> in;
  for (const Tensor& t : inputs) in.push_back(&t);
  wire(shared_from_this(), in.data(), in.size(), nullptr, 0);  // the inputs; the outputs follow

  std::vector<const TensorImpl*> original = sort_outputs(inputs, outputs);
  num_outputs_ = static_cast<uint32_t>(outputs.size());
  for (size_t k = 0; k < outputs.size(); ++k) {
    TensorImpl* o = outputs[k].impl();
    tape.output_meta.push_back(InputMeta{o->shape, o->dtype});
    if (!differentiable_[k]) continue;
    o->grad_fn = shared_from_this();
    o->output_nr = static_cast<uint32_t>(k);
    o->requires_grad = true;
  }
  take_saved(outputs, original);
  keep_replay_inputs(inputs);
  check_anomalies(outputs.data(), outputs.size());
}

std::vector<const TensorImpl*> CustomFunctionNode::sort_outputs(const TensorList& inputs,
                                                                TensorList& outputs) {
  // Which outputs are differentiable, and fresh handles for those that are not plain results of
  // forward (an input returned as is, or a tensor already on a tape), so no input is re-parented.
  std::vector<const TensorImpl*> original(outputs.size());
  differentiable_.assign(outputs.size(), false);
  auto is_input = [&](const TensorImpl* impl) {
    for (const Tensor& t : inputs)
      if (t.defined() && t.impl() == impl) return true;
    return false;
  };
  for (size_t k = 0; k < outputs.size(); ++k) {
    Tensor& out = outputs[k];
    if (!out.defined())
      fail<AutogradError>("{}: forward returned an undefined tensor as output {}", name(), k);
    original[k] = out.impl();
    bool marked = false;
    for (const TensorImpl* m : ctx.non_differentiable_) marked = marked || m == out.impl();
    differentiable_[k] = !marked && is_floating(out.dtype());
    if (is_input(out.impl()) || out.requires_grad()) out = out.detach();
    for (size_t j = 0; j < k;
         ++j)  // the same tensor returned twice: give each output its own handle
      if (outputs[j].impl() == out.impl()) out = out.detach();
  }
  for (const TensorImpl* m : ctx.non_differentiable_) {
    bool found = false;
    for (const TensorImpl* o : original) found = found || o == m;
    if (!found)
      fail<ValueError>("{}: mark_non_differentiable was given a tensor that forward did not return",
                       name());
  }
  return original;
}

void CustomFunctionNode::take_saved(const TensorList& outputs,
                                    const std::vector<const TensorImpl*>& original) {
  // Saved tensors move into the node (so backward checks their versions and release() frees them).
  // The context's own handles are dropped: an output held there would keep this node alive forever.
  for (const Tensor& t : ctx.to_save_) {
    size_t k = 0;
    while (k < outputs.size() && !(t.defined() && original[k] == t.impl())) ++k;
    if (k < outputs.size())
      saved_tensors.emplace_back(outputs[k], differentiable_[k]);
    else
      saved_tensors.emplace_back(t, false);
  }
  had_saved_ = !ctx.to_save_.empty();
  ctx.to_save_.clear();
  ctx.non_differentiable_.clear();
}

void CustomFunctionNode::keep_replay_inputs(const TensorList& inputs) {
  // Replay inputs: copies under a TapeCheckGuard, otherwise aliases whose versions are checked.
  bool copy = is_tape_checking();
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      tape_check.replay_inputs.push_back(Tensor());
      if (!copy) replay_versions_.push_back(0);
      continue;
    }
    tape_check.replay_inputs.push_back(copy ? t.detach().clone() : t.detach());
    if (!copy) replay_versions_.push_back(t.version());
  }
}

Tensor CustomFunctionNode::saved(size_t i) const {
  if (released_) fail_released();
  if (i >= saved_tensors.size())
    fail<AutogradError>("{}: saved tensor {} requested, only {} saved", name(), i,
                        saved_tensors.size());
  return saved_tensors[i].unpack(*this);
}

void CustomFunctionNode::release() {
  if (had_saved_) {
    saved_tensors.clear();
    released_ = true;
  }
}

void set_custom_tangents(const std::string& op, const TensorList& inputs, TensorList& outputs,
                         const TensorList& tangents, bool has_jvp) {
  if (!has_jvp) fwd::detail::fail_no_jvp(op);
  if (tangents.size() != outputs.size())
    fail<AutogradError>("{}: jvp returned {} tangents for {} outputs (return one per output)", op,
                        tangents.size(), outputs.size());
  for (size_t k = 0; k < outputs.size(); ++k) {
    Tensor& out = outputs[k];
    if (!tangents[k].defined() || !is_floating(out.dtype())) continue;
    for (const Tensor& x : inputs)
      if (x.defined() && out.same(x)) out = out.detach();  // never give an input a tangent
    fwd::detail::set_tangent(out, fwd::detail::fit_tangent(out, tangents[k], op.c_str()));
  }
}

bool CustomFunctionNode::can_replay() const {
  if (!tape_check.replay_fn) return false;
  for (size_t i = 0; i < replay_versions_.size(); ++i)
    if (tape_check.replay_inputs[i].defined() &&
        tape_check.replay_inputs[i].version() != replay_versions_[i])
      return false;
  return true;
}

TensorList CustomFunctionNode::replay(const TensorList& inputs) const {
  TensorList out = tape_check.replay_fn(inputs);
  for (size_t k = 0; k < out.size() && k < differentiable_.size(); ++k)
    if (!differentiable_[k]) out[k] = Tensor();
  return out;
}

TensorList CustomFunctionNode::check_backward(TensorList grads) const {
  if (grads.size() != num_inputs())
    fail<AutogradError>(
        "{}: backward returned {} gradients, but forward has {} tensor inputs (return one per "
        "tensor input; an undefined Tensor means no gradient)",
        name(), grads.size(), num_inputs());
  for (size_t i = 0; i < grads.size(); ++i) {
    Tensor& g = grads[i];
    if (!g.defined()) continue;
    if (!needs_input_grad(i)) {
      g = Tensor();
      continue;
    }
    if (!is_floating(g.dtype()))
      fail<DtypeError>("{}: backward returned a {} gradient of shape {} for input {}", name(),
                       dtype_name(g.dtype()), g.shape(), i);
    if (g.dtype() != tape.input_meta[i].dtype) g = g.to(tape.input_meta[i].dtype);
  }
  return grads;
}

}  // namespace detail
}  // namespace ag
