#include "autograd/op.h"

#include "autograd/ops/elementwise.h"

namespace ag::op_detail {

bool any_requires_grad(const Tensor* const* ts, size_t n) {
  if (!is_grad_enabled()) return false;
  for (size_t i = 0; i < n; ++i) {
    if (!ts[i]->defined()) continue;
    const TensorImpl& impl = *ts[i]->impl();
    if (impl.requires_grad || impl.stale_view()) return true;
  }
  return false;
}

bool any_dual(const Tensor* const* ts, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (ts[i]->defined() && fwd::detail::is_dual(*ts[i])) return true;
  return false;
}

void set_tangents(const char* op, const TensorList& tangents, Tensor* outs, size_t m) {
  for (size_t k = 0; k < m && k < tangents.size(); ++k)
    if (tangents[k].defined() && is_floating(outs[k].dtype()))
      fwd::detail::set_tangent(outs[k], fwd::detail::fit_tangent(outs[k], tangents[k], op));
}

Tensor add_tangents(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return add(a, b);
}

SavedTensor save_value(const Tensor& t, const Tensor* outs, size_t m) {
  bool is_output = false;
  for (size_t k = 0; k < m; ++k) is_output = is_output || (t.defined() && t.same(outs[k]));
  return SavedTensor(t, is_output);
}

void keep_replay_inputs(Node& node, const Tensor* const* inputs, size_t n) {
  for (size_t i = 0; i < n; ++i)
    node.replay_inputs.push_back(inputs[i]->defined() ? inputs[i]->detach().clone() : Tensor());
}

}  // namespace ag::op_detail
