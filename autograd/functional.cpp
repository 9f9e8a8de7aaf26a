#include "autograd/functional.h"
#include "autograd/node.h"

#include "autograd/forward.h"

#include <fmt/ranges.h>

#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/shape.h"

namespace ag {

namespace {

// ---- checks and preparation ----

// The tensors f is evaluated on: the caller's inputs themselves when the results are to be
// differentiated further (create_graph) and they require grad, else detached copies that require
// grad (the caller's graph and .grad are not touched).
TensorList prepare_inputs(const char* op, const TensorList& inputs, bool create_graph) {
  if (inputs.empty()) fail<ValueError>("{}: no inputs given", op);
  TensorList xs;
  xs.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined()) fail<ValueError>("{}: input {} is undefined", op, i);
    if (!is_floating(x.dtype()))
      fail<DtypeError>(
          "{}: input {} of shape {} has dtype {}; only float32 and float64 inputs can be "
          "differentiated",
          op, i, x.shape(), dtype_name(x.dtype()));
    xs.push_back(create_graph && x.requires_grad() ? x : x.detach().requires_grad_());
  }
  return xs;
}

// Direction tensors (v of jvp/hvp/vhp, u of vjp) against the tensors they must match (`like`, the
// inputs or the outputs). An empty list means 1 for a single one-element tensor.
TensorList check_directions(const char* op, const char* name, const TensorList& dirs,
                            const TensorList& like, const char* what) {
  if (dirs.empty()) {
    if (like.size() == 1 && like[0].numel() == 1) return {ones_like(like[0].detach())};
    std::vector<std::string> shapes;
    for (const Tensor& t : like) shapes.push_back(to_string(t.shape()));
    fail<ShapeError>(
        "{}: {} may be left out only for a single one-element {}; got {} {}s of shapes {}", op,
        name, what, like.size(), what, fmt::join(shapes, " "));
  }
  if (dirs.size() != like.size())
    fail<ShapeError>("{}: {} has {} tensors for {} {}s", op, name, dirs.size(), like.size(), what);
  for (size_t i = 0; i < dirs.size(); ++i) {
    if (!dirs[i].defined()) fail<ValueError>("{}: {}[{}] is undefined", op, name, i);
    if (!(dirs[i].shape() == like[i].shape()))
      fail<ShapeError>("{}: {}[{}] has shape {} but {} {} has shape {}", op, name, i,
                       dirs[i].shape(), what, i, like[i].shape());
    if (dirs[i].dtype() != like[i].dtype())
      fail<DtypeError>("{}: {}[{}] has dtype {} but {} {} has dtype {}", op, name, i,
                       dtype_name(dirs[i].dtype()), what, i, dtype_name(like[i].dtype()));
  }
  return dirs;
}

// f(xs) with recording on (even inside a NoGradGuard), its outputs checked.
TensorList evaluate(const char* op, const TensorFn& f, const TensorList& xs) {
  EnableGradGuard recording;
  TensorList ys = f(xs);
  if (ys.empty()) fail<ValueError>("{}: the function returned no outputs", op);
  for (size_t i = 0; i < ys.size(); ++i) {
    if (!ys[i].defined()) fail<ValueError>("{}: output {} of the function is undefined", op, i);
    if (!is_floating(ys[i].dtype()))
      fail<DtypeError>(
          "{}: output {} of the function (shape {}) has dtype {}; only float32 and "
          "float64 outputs can be differentiated",
          op, i, ys[i].shape(), dtype_name(ys[i].dtype()));
  }
  return ys;
}

// The single one-element output of the objective of hessian, hvp and vhp.
Tensor evaluate_scalar(const char* op, const TensorFn& f, const TensorList& xs) {
  TensorList ys = evaluate(op, f, xs);
  if (ys.size() != 1)
    fail<ShapeError>("{}: the function must return a single one-element tensor, got {} outputs", op,
                     ys.size());
  if (ys[0].numel() != 1)
    fail<ShapeError>("{}: the function must return a single one-element tensor, got shape {}", op,
                     ys[0].shape());
  return ys[0];
}

// A function of one tensor as a function of a list of one.
TensorFn as_list_fn(const std::function<Tensor(const Tensor&)>& f) {
  return [&f](const TensorList& a) { return TensorList{f(a[0])}; };
}

TensorFn as_list_fn(const ScalarFn& f) {
  return [f](const TensorList& xs) { return TensorList{f(xs)}; };
}

// Results handed back: cut from the graph unless the caller asked for one.
TensorList finish(TensorList ts, bool create_graph) {
  if (!create_graph)
    for (Tensor& t : ts) t = t.detach();
  return ts;
}
Tensor finish(const Tensor& t, bool create_graph) { return create_graph ? t : t.detach(); }

// J^T u for outputs already computed from xs: outputs that do not require grad (do not depend on
// any input) and inputs they do not reach give zeros.
TensorList reverse_product(const TensorList& ys, const TensorList& xs, const TensorList& us,
                           bool retain_graph, bool create_graph) {
  TensorList outs, seeds;
  for (size_t i = 0; i < ys.size(); ++i)
    if (ys[i].requires_grad()) outs.push_back(ys[i]), seeds.push_back(us[i]);
  TensorList g(xs.size());
  if (!outs.empty()) g = grad(outs, xs, seeds, retain_graph, create_graph, /*allow_unused=*/true);
  for (size_t j = 0; j < xs.size(); ++j)
    if (!g[j].defined()) g[j] = zeros_like(xs[j].detach());
  return g;
}

// The gradient of a one-element output, recorded (create_graph) so it can be differentiated again.
TensorList recorded_gradient(const Tensor& y, const TensorList& xs) {
  return reverse_product({y}, xs, {ones_like(y.detach())}, /*retain_graph=*/true,
                         /*create_graph=*/true);
}

}  // namespace

// ---- forward mode ----
//
// The two functions below are the only uses of forward mode (ag::fwd, forward.h) in this file.
namespace detail {

// (f(xs), J v) by one evaluation of f on dual inputs x_j + eps v_j: the outputs' tangents are J v.
// An undefined vs[j] is a zero tangent for input j. Without create_graph the inputs enter without
// their gradient requirement, so nothing is recorded on the tape; with it, J v is recorded as a
// function of xs (the JVP rules are written in differentiable ops: reverse over forward).
std::pair<TensorList, TensorList> forward_jvp(const char* op, const TensorFn& f,
                                              const TensorList& xs, const TensorList& vs,
                                              bool create_graph) {
  EnableGradGuard recording;  // make_dual links a dual to its primal's graph only when recording
  fwd::DualLevel level;
  TensorList duals(xs.size());
  for (size_t j = 0; j < xs.size(); ++j) {
    Tensor x = create_graph ? xs[j] : xs[j].detach();
    duals[j] = vs[j].defined() ? fwd::make_dual(x, vs[j]) : x;
  }
  TensorList outs = evaluate(op, f, duals);
  TensorList ys(outs.size()), jv(outs.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    fwd::UnpackedDual u = fwd::unpack_dual(outs[i]);
    ys[i] = u.primal;
    jv[i] = u.tangent.defined() ? u.tangent : zeros_like(u.primal.detach());
  }
  return {ys, jv};
}

// (f(xs), H v) for a one-element objective f, forward over reverse: f is evaluated on dual inputs
// and its gradient taken by a backward pass that carries the tangents through the backward
// formulas, so the gradient's tangent is H v. Undefined vs[j] as in forward_jvp.
std::pair<Tensor, TensorList> forward_over_reverse_hvp(const char* op, const TensorFn& f,
                                                       const TensorList& xs, const TensorList& vs,
                                                       bool create_graph) {
  EnableGradGuard recording;  // make_dual links a dual to its primal's graph only when recording
  fwd::DualLevel level;
  TensorList duals(xs.size());
  for (size_t j = 0; j < xs.size(); ++j)
    duals[j] = vs[j].defined() ? fwd::make_dual(xs[j], vs[j]) : xs[j];
  Tensor y = evaluate_scalar(op, f, duals);
  TensorList g(xs.size());
  if (y.requires_grad())
    g = grad({y}, xs, {ones_like(y.detach())}, /*retain_graph=*/create_graph, create_graph,
             /*allow_unused=*/true);
  TensorList hv(xs.size());
  for (size_t j = 0; j < xs.size(); ++j) {
    Tensor t = g[j].defined() ? fwd::unpack_dual(g[j]).tangent : Tensor();
    hv[j] = t.defined() ? t : zeros_like(xs[j].detach());
  }
  return {fwd::unpack_dual(y).primal, hv};
}

}  // namespace detail

namespace {

// ---- assembling Jacobians ----

Shape concat(const Shape& a, const Shape& b) {
  Shape r = a;
  for (int64_t d : b) r.push_back(d);
  return r;
}

// A tensor of `like`'s shape and dtype, 1 at flat position k and 0 elsewhere.
Tensor basis(const Tensor& like, int64_t k) {
  NoGradGuard plain;
  Tensor e = zeros({like.numel()}, like.dtype());
  e.select(0, k).fill_(1.0);
  return e.reshape(like.shape());
}

// Rows: one backward pass per element of each output, through the graph of ys (kept for all of
// them). J[i][j] stacks the flattened gradients of output i's elements with respect to input j.
JacobianTable jacobian_rows(const TensorList& ys, const TensorList& xs, bool create_graph) {
  JacobianTable J(ys.size(), TensorList(xs.size()));
  for (size_t i = 0; i < ys.size(); ++i) {
    const int64_t m = ys[i].numel();
    std::vector<TensorList> rows(xs.size());
    for (int64_t e = 0; e < m; ++e) {
      TensorList g =
          reverse_product({ys[i]}, xs, {basis(ys[i], e)}, /*retain_graph=*/true, create_graph);
      for (size_t j = 0; j < xs.size(); ++j) rows[j].push_back(g[j].reshape({xs[j].numel()}));
    }
    for (size_t j = 0; j < xs.size(); ++j) {
      Shape shape = concat(ys[i].shape(), xs[j].shape());
      J[i][j] = m == 0 ? zeros(shape, xs[j].dtype()) : stack(rows[j], 0).reshape(shape);
    }
  }
  return J;
}

// Columns: one forward-mode product per element of each input. `product(vs)` returns (outputs,
// J v) for directions vs (undefined: zero); `outputs` gives the output shapes when no input has an
// element (nothing to differentiate along).
using ColumnProduct = std::function<std::pair<TensorList, TensorList>(const TensorList& vs)>;
JacobianTable jacobian_columns(const ColumnProduct& product, const TensorList& xs,
                               const std::function<TensorList()>& outputs) {
  TensorList ys;
  std::vector<std::vector<TensorList>> cols(xs.size());  // [j][i] -> columns
  for (size_t j = 0; j < xs.size(); ++j) {
    for (int64_t e = 0; e < xs[j].numel(); ++e) {
      TensorList vs(xs.size());
      vs[j] = basis(xs[j], e);
      auto [out, jv] = product(vs);
      if (ys.empty()) ys = out;
      if (cols[j].empty()) cols[j].resize(out.size());
      for (size_t i = 0; i < out.size(); ++i) cols[j][i].push_back(jv[i].reshape({out[i].numel()}));
    }
  }
  if (ys.empty()) ys = outputs();
  JacobianTable J(ys.size(), TensorList(xs.size()));
  for (size_t i = 0; i < ys.size(); ++i)
    for (size_t j = 0; j < xs.size(); ++j) {
      Shape shape = concat(ys[i].shape(), xs[j].shape());
      J[i][j] = xs[j].numel() == 0 || ys[i].numel() == 0 ? zeros(shape, xs[j].dtype())
                                                         : stack(cols[j][i], 1).reshape(shape);
    }
  return J;
}

JacobianTable finish(JacobianTable J, bool create_graph) {
  if (!create_graph)
    for (TensorList& row : J) row = finish(std::move(row), false);
  return J;
}

JacobianTable jacobian_of(const char* op, const TensorFn& f, const TensorList& inputs,
                          bool create_graph, JacobianStrategy strategy) {
  TensorList xs = prepare_inputs(op, inputs, create_graph);
  if (strategy == JacobianStrategy::reverse)
    return finish(jacobian_rows(evaluate(op, f, xs), xs, create_graph), create_graph);
  ColumnProduct product = [&](const TensorList& vs) {
    return detail::forward_jvp(op, f, xs, vs, create_graph);
  };
  return finish(jacobian_columns(product, xs, [&] { return evaluate(op, f, xs); }), create_graph);
}

JacobianTable hessian_of(const char* op, const TensorFn& f, const TensorList& inputs,
                         bool create_graph, JacobianStrategy outer) {
  TensorList xs = prepare_inputs(op, inputs, create_graph);
  if (outer == JacobianStrategy::reverse) {
    TensorList g = recorded_gradient(evaluate_scalar(op, f, xs), xs);
    return finish(jacobian_rows(g, xs, create_graph), create_graph);
  }
  ColumnProduct product = [&](const TensorList& vs) {
    auto [y, hv] = detail::forward_over_reverse_hvp(op, f, xs, vs, create_graph);
    return std::pair<TensorList, TensorList>{xs, hv};  // H's rows are indexed like the inputs
  };
  return finish(jacobian_columns(product, xs, [&] { return xs; }), create_graph);
}

std::pair<Tensor, TensorList> hvp_of(const char* op, const TensorFn& f, const TensorList& inputs,
                                     const TensorList& v, bool create_graph) {
  TensorList xs = prepare_inputs(op, inputs, create_graph);
  TensorList vs = check_directions(op, "v", v, inputs, "input");
  auto [y, hv] = detail::forward_over_reverse_hvp(op, f, xs, vs, create_graph);
  return {finish(y, create_graph), finish(std::move(hv), create_graph)};
}

std::pair<Tensor, TensorList> vhp_of(const char* op, const TensorFn& f, const TensorList& inputs,
                                     const TensorList& v, bool create_graph) {
  TensorList xs = prepare_inputs(op, inputs, create_graph);
  TensorList vs = check_directions(op, "v", v, inputs, "input");
  Tensor y = evaluate_scalar(op, f, xs);
  // v^T H = d/dx <grad f, v>: the vjp of the recorded gradient with v.
  TensorList g = recorded_gradient(y, xs);
  TensorList vh = reverse_product(g, xs, vs, create_graph, create_graph);
  return {finish(y, create_graph), finish(std::move(vh), create_graph)};
}

}  // namespace

std::pair<TensorList, TensorList> vjp(const TensorFn& f, const TensorList& inputs,
                                      const TensorList& u, bool create_graph) {
  TensorList xs = prepare_inputs("vjp", inputs, create_graph);
  TensorList ys = evaluate("vjp", f, xs);
  TensorList us = check_directions("vjp", "u", u, ys, "output");
  TensorList g = reverse_product(ys, xs, us, create_graph, create_graph);
  return {finish(std::move(ys), create_graph), finish(std::move(g), create_graph)};
}

std::pair<TensorList, TensorList> jvp(const TensorFn& f, const TensorList& inputs,
                                      const TensorList& v, bool create_graph) {
  TensorList xs = prepare_inputs("jvp", inputs, create_graph);
  TensorList vs = check_directions("jvp", "v", v, inputs, "input");
  auto [ys, jv] = detail::forward_jvp("jvp", f, xs, vs, create_graph);
  return {finish(std::move(ys), create_graph), finish(std::move(jv), create_graph)};
}

std::pair<Tensor, Tensor> jvp(const std::function<Tensor(const Tensor&)>& f, const Tensor& x,
                              const Tensor& v) {
  auto [ys, jv] = jvp(as_list_fn(f), TensorList{x}, TensorList{v});
  return {ys[0], jv[0]};
}

JacobianTable jacobian(const TensorFn& f, const TensorList& inputs, bool create_graph,
                       JacobianStrategy strategy) {
  return jacobian_of("jacobian", f, inputs, create_graph, strategy);
}

Tensor jacobian(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  return jacobian_of("jacobian", as_list_fn(f), {x}, false, JacobianStrategy::reverse)[0][0];
}

JacobianTable hessian(const ScalarFn& f, const TensorList& inputs, bool create_graph,
                      JacobianStrategy outer) {
  return hessian_of("hessian", as_list_fn(f), inputs, create_graph, outer);
}

JacobianTable hessian(const TensorFn& f, const TensorList& inputs, bool create_graph,
                      JacobianStrategy outer) {
  return hessian_of("hessian", f, inputs, create_graph, outer);
}

Tensor hessian(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  return hessian_of("hessian", as_list_fn(f), {x}, false, JacobianStrategy::forward)[0][0];
}

std::pair<Tensor, TensorList> hvp(const ScalarFn& f, const TensorList& inputs, const TensorList& v,
                                  bool create_graph) {
  return hvp_of("hvp", as_list_fn(f), inputs, v, create_graph);
}

std::pair<Tensor, TensorList> hvp(const TensorFn& f, const TensorList& inputs, const TensorList& v,
                                  bool create_graph) {
  return hvp_of("hvp", f, inputs, v, create_graph);
}

std::pair<Tensor, TensorList> vhp(const ScalarFn& f, const TensorList& inputs, const TensorList& v,
                                  bool create_graph) {
  return vhp_of("vhp", as_list_fn(f), inputs, v, create_graph);
}

std::pair<Tensor, TensorList> vhp(const TensorFn& f, const TensorList& inputs, const TensorList& v,
                                  bool create_graph) {
  return vhp_of("vhp", f, inputs, v, create_graph);
}

}  // namespace ag
