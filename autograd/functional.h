// The functional API: derivatives of pure functions of tensors, returned as tensors.
//
//   auto [y, Jv]  = ag::jvp(f, x, v);          // J v        (forward mode)
//   auto [ys, g]  = ag::vjp(F, xs, us);        // J^T u      (reverse mode)
//   Tensor J      = ag::jacobian(f, x);        // shape f(x).shape + x.shape
//   Tensor H      = ag::hessian(loss, w);      // shape w.shape + w.shape
//   auto [l, Hv]  = ag::hvp(L, ws, vs);        // H v        (forward-over-reverse)
//
// A function here is evaluated by these calls, never by you: each call makes its own copies of the
// inputs (detached, requiring grad), so the inputs' own .grad and graph are left alone, and the
// results are plain tensors with no history unless `create_graph` is true. With create_graph the
// results are recorded as functions of the inputs (when the inputs require grad) and can be
// differentiated again: a gradient of a Jacobian entry, a Newton step inside a meta-gradient.
//
// Shapes are those of PyTorch's torch.autograd.functional. For a function of a list of inputs x_j
// with a list of outputs y_i, a Jacobian is returned as a table J[i][j] of shape
// y_i.shape + x_j.shape (PyTorch's tuple of tuples); a Hessian as H[i][j] of shape
// x_i.shape + x_j.shape. The single-tensor forms return the one tensor.
//
// Cost, for n = the number of input elements and m = the number of output elements, in forward
// passes (evaluations of f), backward passes and passes of f carrying tangents (forward mode):
//   vjp       one forward + one backward, whatever n and m
//   jvp       one forward pass carrying tangents, whatever n and m (before ag::fwd: 2 backward)
//   jacobian  reverse: one forward + m backward passes (rows)     -> cheaper when m < n
//             forward: n forward passes carrying tangents (columns) -> cheaper when n < m
//   hessian   forward-over-reverse: n gradient evaluations carrying tangents (columns of H)
//             reverse-over-reverse: one gradient with create_graph + n backward passes through it
//   hvp       one gradient evaluation carrying a tangent: a small multiple of one gradient
//   vhp       one gradient with create_graph + one backward through it (same H v for a symmetric H)
// docs/functional.md has the measured ratios and which strategy to pick.
//
// Errors (the project's hierarchy, naming the call and the shapes): ValueError for no inputs, an
// undefined input or output; DtypeError for an input, output or direction that is not floating
// point or whose dtype differs from its input's; ShapeError for a direction whose count or shapes
// do not match the inputs (or outputs), and for a function given to hessian, hvp or vhp that does
// not return a single one-element tensor.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "autograd/gradcheck.h"  // TensorFn: a function of a list of tensors returning a list
#include "autograd/tensor.h"

namespace ag {

// A function of several tensors with one output: the scalar objectives of hessian, hvp and vhp.
using ScalarFn = std::function<Tensor(const TensorList&)>;
// Jacobians and Hessians of functions of lists: table[i][j] is the block of output i (or of input
// i, for a Hessian) with respect to input j.
using JacobianTable = std::vector<TensorList>;

// How a Jacobian is assembled.
enum class JacobianStrategy {
  reverse,  // one vector-Jacobian product per output element: a row of J per backward pass
  forward,  // one Jacobian-vector product per input element: a column of J per forward pass
};

// ---- products ----

// Vector-Jacobian product u^T J, i.e. J^T u, by one backward pass.
// f: inputs -> outputs; `u` has one tensor per output, of that output's shape and dtype (it may be
// empty when f has a single one-element output: u = 1 then). Returns (f(inputs), J^T u), the
// latter with one tensor per input, of that input's shape. Outputs that do not depend on an input
// contribute zeros to it.
std::pair<TensorList, TensorList> vjp(const TensorFn& f, const TensorList& inputs,
                                      const TensorList& u = {}, bool create_graph = false);

// Jacobian-vector product J v, in forward mode: the directional derivative of f at `inputs` along
// `v`. `v` has one tensor per input, of that input's shape and dtype (it may be empty when there is
// a single one-element input: v = 1 then). Returns (f(inputs), J v), the latter with one tensor per
// output, of that output's shape.
std::pair<TensorList, TensorList> jvp(const TensorFn& f, const TensorList& inputs,
                                      const TensorList& v = {}, bool create_graph = false);

// The same for a function of one tensor: returns (f(x), J v), J v of f(x)'s shape.
std::pair<Tensor, Tensor> jvp(const std::function<Tensor(const Tensor&)>& f, const Tensor& x,
                              const Tensor& v);

// ---- Jacobians ----

// The full Jacobian, J[i][j] = d output_i / d input_j, of shape output_i.shape + input_j.shape
// (element [a..., b...] is d output_i[a...] / d input_j[b...]). `strategy` picks rows (reverse:
// m backward passes) or columns (forward: n forward passes); both give the same numbers.
JacobianTable jacobian(const TensorFn& f, const TensorList& inputs, bool create_graph = false,
                       JacobianStrategy strategy = JacobianStrategy::reverse);

// The Jacobian of a function of one tensor, of shape f(x).shape + x.shape (reverse strategy).
Tensor jacobian(const std::function<Tensor(const Tensor&)>& f, const Tensor& x);

// ---- second derivatives of a scalar function ----

// The Hessian of a function with a single one-element output (0-d, or any shape with one element):
// H[i][j] = d^2 f / d input_i d input_j, of shape input_i.shape + input_j.shape. `outer` is the
// strategy of the outer Jacobian, the one taken of the gradient: forward (forward-over-reverse,
// the default: one gradient evaluation carrying a tangent per input element) or reverse
// (reverse-over-reverse: the gradient once with create_graph, then one backward pass through it
// per input element).
JacobianTable hessian(const ScalarFn& f, const TensorList& inputs, bool create_graph = false,
                      JacobianStrategy outer = JacobianStrategy::forward);
// The same for a TensorFn, which must return exactly one one-element tensor.
JacobianTable hessian(const TensorFn& f, const TensorList& inputs, bool create_graph = false,
                      JacobianStrategy outer = JacobianStrategy::forward);

// The Hessian of a function of one tensor returning a 0-d (one-element) tensor: shape
// x.shape + x.shape.
Tensor hessian(const std::function<Tensor(const Tensor&)>& f, const Tensor& x);

// Hessian-vector product H v, forward-over-reverse: the directional derivative of the gradient
// along `v` (one tensor per input, of its shape and dtype). Returns (f(inputs), H v), H v with one
// tensor per input. f must return a single one-element tensor.
std::pair<Tensor, TensorList> hvp(const ScalarFn& f, const TensorList& inputs, const TensorList& v,
                                  bool create_graph = false);
// The same for a TensorFn with exactly one one-element output.
std::pair<Tensor, TensorList> hvp(const TensorFn& f, const TensorList& inputs, const TensorList& v,
                                  bool create_graph = false);

// Vector-Hessian product v^T H, reverse-over-reverse: the gradient of <grad f, v>. Returns
// (f(inputs), v^T H) with one tensor per input. Equals hvp's result, H being symmetric.
std::pair<Tensor, TensorList> vhp(const ScalarFn& f, const TensorList& inputs, const TensorList& v,
                                  bool create_graph = false);
// The same for a TensorFn with exactly one one-element output.
std::pair<Tensor, TensorList> vhp(const TensorFn& f, const TensorList& inputs, const TensorList& v,
                                  bool create_graph = false);

}  // namespace ag
