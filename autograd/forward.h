// Forward-mode automatic differentiation: dual tensors.
//
//   ag::fwd::DualLevel level;                           // forward AD on in this scope
//   ag::Tensor x = ag::fwd::make_dual(x0, v);           // value x0, tangent v
//   ag::Tensor y = f(x);                                 // every op carries the tangent along
//   ag::Tensor jv = ag::fwd::unpack_dual(y).tangent;    // J_f(x0) v, one forward pass
//
// A dual tensor is a value (the primal) and a tangent of the same shape and dtype. While a
// DualLevel is open, every differentiable op that gets a dual input returns a dual: its tangent is
// the op's Jacobian-vector product (JVP), computed by the op's JVP rule, which sits beside its
// backward rule in its family's file under autograd/ops/. JVP rules are written with differentiable
// ops, so
//   - reverse over forward: a tangent computed from inputs that require grad is itself recorded on
//     the tape, and backward through it differentiates the JVP;
//   - forward over reverse: a backward run on dual tensors (grad(...) of a dual output) carries
//     tangents through the backward formulas, so the tangent of a gradient is a Hessian-vector
//     product.
//
// What each kind of op does with tangents:
//   - differentiable ops: tangent = J v by the op's rule (docs/ops.md lists them);
//   - views (reshape, slice, transpose, expand, select, split pieces...): the view of a dual is a
//     dual whose tangent is the same view of the tangent;
//   - in-place ops (x.add_(y), x.mul_(2)...): the tangent of x is updated with the op's JVP
//   (written
//     into x's tangent in place when that tangent is a plain tensor, so views of x see it);
//   - piecewise-constant float ops (sign): a zero tangent;
//   - ops with integer or bool outputs (argmax, the indices of max, comparisons, one_hot,
//     randint, multinomial, bernoulli's draws) and factories (zeros, rand, randn...): no tangent,
//     they are not differentiable; random masks (dropout) are constants, so dropout's tangent is
//     the tangent times the mask;
//   - custom ops (function.h): their `jvp` if they define one, else AutogradError naming the op.
// An op without a JVP rule raises AutogradError naming it; no tangent is ever silently dropped.
//
// detach() returns a tensor without tangent (as in PyTorch). Levels do not nest: opening a
// DualLevel while one is open on the same thread raises AutogradError. Tangents made in a level
// are ignored once it has ended. Forward mode is per thread, like grad mode.
#pragma once

#include <cstdint>
#include <string>

#include "autograd/tensor.h"

namespace ag::fwd {

// RAII: opens a forward-AD level on this thread for its lifetime. Dual tensors made inside it lose
// their tangents (unpack_dual returns none) when it ends. AutogradError if a level is already open
// on this thread (levels do not nest).
class DualLevel {
 public:
  DualLevel();
  ~DualLevel();
  DualLevel(const DualLevel&) = delete;
  DualLevel& operator=(const DualLevel&) = delete;
  // This level's identifier (positive, never reused).
  uint64_t id() const { return id_; }

 private:
  uint64_t id_;
};

// Whether a DualLevel is open on this thread.
bool is_level_open();

// A dual tensor with value `primal` and tangent `tangent`. The result aliases primal (same storage,
// and, if primal requires grad, a gradient through it reaches primal); the tangent is kept as
// given (not copied), and may require grad itself (forward over reverse). Raises AutogradError when
// no level is open, and ShapeError / DtypeError naming both shapes or dtypes when the tangent does
// not match the primal (both must be float32 or float64, of the same shape and dtype).
Tensor make_dual(const Tensor& primal, const Tensor& tangent);

// The two halves of a (possibly) dual tensor.
struct UnpackedDual {
  // The value: a view of the tensor without tangent, carrying its gradient history.
  Tensor primal;
  // The tangent at the open level; an undefined Tensor (tangent.defined() == false) when the
  // tensor is not a dual (no level open, or nothing dual flowed into it), which means zero.
  Tensor tangent;
};
// Splits `t` into value and tangent (see UnpackedDual). AutogradError if t is undefined.
UnpackedDual unpack_dual(const Tensor& t);

// ---- for op implementations (autograd/op.h) ----
namespace detail {
// Whether tangents are being propagated on this thread now: a level is open and no JVP rule is
// being evaluated (rules compute with primal values; tangents of tangents are not formed).
bool propagating();
// The tangent of t at the open level, or an undefined Tensor.
Tensor tangent_of(const Tensor& t);
// Whether t has a tangent at the open level.
bool is_dual(const Tensor& t);
// Makes `tangent` the tangent of `t` at the open level (an undefined tangent removes it).
void set_tangent(const Tensor& t, const Tensor& tangent);
// Registers a TensorImpl that holds a tangent at the open level (set_tangent does it; call it for
// any other new TensorImpl that copies a tangent), so that the level drops the tangent when it
// ends (this frees reference cycles through tangents). No-op without a tangent at the open level.
void hold_tangent(const std::shared_ptr<TensorImpl>& impl);
// `t` (a rule's tangent for `out`) in out's dtype, expanded to out's shape if it broadcasts; else
// ShapeError naming the op.
Tensor fit_tangent(const Tensor& out, Tensor t, const char* op);
// The AutogradError for a dual input reaching an op without a JVP rule.
[[noreturn]] void fail_no_jvp(const std::string& op);
// RAII: no tangent propagation in this scope (JVP rules run inside one).
class Suspend {
 public:
  Suspend();
  ~Suspend();
  Suspend(const Suspend&) = delete;
  Suspend& operator=(const Suspend&) = delete;

 private:
  bool prev_;
};
}  // namespace detail

}  // namespace ag::fwd
