#include "autograd/op.h"

#include "autograd/ops/elementwise.h"

namespace ag {
namespace fwd::detail {
// forward.cpp: whether tangents propagate on this thread.
extern thread_local bool t_propagating [[gnu::tls_model("initial-exec")]];
}  // namespace fwd::detail

namespace op_detail {

Needs what_is_needed(const Tensor* const* ts, size_t n) {
  Needs r;
  r.record = is_grad_enabled() && any_needs_grad(ts, n);
  if (fwd::detail::t_propagating) [[unlikely]]
    for (size_t i = 0; i < n && !r.tangents; ++i)
      r.tangents = ts[i]->defined() && fwd::detail::is_dual(*ts[i]);
  return r;
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
    node.tape_check.replay_inputs.push_back(inputs[i]->defined() ? inputs[i]->detach().clone()
                                                                 : Tensor());
}

}  // namespace op_detail
}  // namespace ag
