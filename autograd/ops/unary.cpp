#include "autograd/ops/unary.h"

#include <cmath>
#include <numbers>

#include "autograd/kernels/bf16.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/kernels/simd.h"
#include "autograd/op.h"
#include "autograd/ops/elementwise.h"

namespace ag {

namespace {

// out[i] = f(x[i]) on a float tensor (integer inputs are converted to float32 first).
template <class F>
Tensor unary_kernel(const char* op, const Tensor& x, F f) {
  Tensor in = is_floating(x.dtype()) ? kernels::in_compute(x) : x.to(float32);
  Tensor out = Tensor::empty(in.shape(), in.dtype());
  kernels::dispatch_floating(in.dtype(), op, [&]<class T>() { kernels::map<T, T>(out, f, in); });
  return kernels::to_storage(out, x.dtype());
}

// The same for formulas with transcendental functions, written with xsimd's (kernels/simd.h) so
// that contiguous data is computed a whole SIMD register at a time.
template <class F>
Tensor simd_unary_kernel(const char* op, const Tensor& x, F f) {
  Tensor in = is_floating(x.dtype()) ? kernels::in_compute(x) : x.to(float32);
  Tensor out = Tensor::empty(in.shape(), in.dtype());
  kernels::dispatch_floating(in.dtype(), op, [&]<class T>() { kernels::map_simd<T>(out, f, in); });
  return kernels::to_storage(out, x.dtype());
}

// Saved values of the unary ops: the input or the output.
struct SavedX {
  Tensor x;
};
struct SavedOut {
  Tensor out;
};

using Unary = Tensor (*)(const Tensor&);

// Records the unary elementwise op `self` (named `op`) of input x and result out, whose derivative
// is d(saved): d's parameter says what is saved, the input (SavedX) or the output (SavedOut).
template <class D>
Tensor with_derivative(const char* op, Unary self, const Tensor& x, Tensor out, D d) {
  if (needs_derivatives({&x})) {
    if constexpr (std::is_invocable_v<D, const SavedX&>)
      record(ag::op(op, self, x), out, SavedX{x}, rules::elementwise(d));
    else
      record(ag::op(op, self, x), out, SavedOut{out}, rules::elementwise(d));
  }
  return out;
}

// out[i] = f(x[i]) with derivative d (scalar kernel).
template <class F, class D>
Tensor unary(const char* op, Unary self, const Tensor& x, F f, D d) {
  return with_derivative(op, self, x, unary_kernel(op, x, f), d);
}

// The same with the xsimd kernel.
template <class F, class D>
Tensor simd_unary(const char* op, Unary self, const Tensor& x, F f, D d) {
  return with_derivative(op, self, x, simd_unary_kernel(op, x, f), d);
}

}  // namespace

Tensor neg(const Tensor& x) {
  Tensor out = x.dtype() == float32 || x.dtype() == float64 || x.dtype() == int64
                   ? [&] {
                       Tensor o = Tensor::empty(x.shape(), x.dtype());
                       kernels::dispatch_numeric(x.dtype(), "neg", [&]<class T>() {
                         kernels::map<T, T>(o, [](T v) { return -v; }, x);
                       });
                       return o;
                     }()
                   : unary_kernel("neg", x, [](auto v) { return -v; });
  if (needs_derivatives({&x})) {
    struct None {};
    record(op("neg", neg, x), out, None{},
           rules::linear([](const None&, const Tensor& g) -> TensorList { return {neg(g)}; }));
  }
  return out;
}

Tensor exp(const Tensor& x) {
  return simd_unary(
      "exp", exp, x, [](auto v) { return xsimd::exp(v); }, [](const SavedOut& s) { return s.out; });
}

Tensor log(const Tensor& x) {
  return unary(
      "log", log, x, [](auto v) { return std::log(v); },
      [](const SavedX& s) { return rdiv(s.x, 1.0); });
}

Tensor log1p(const Tensor& x) {
  return unary(
      "log1p", log1p, x, [](auto v) { return std::log1p(v); },
      [](const SavedX& s) { return rdiv(add(s.x, 1.0), 1.0); });
}

Tensor expm1(const Tensor& x) {
  return unary(
      "expm1", expm1, x, [](auto v) { return std::expm1(v); },
      [](const SavedOut& s) { return add(s.out, 1.0); });
}

Tensor sqrt(const Tensor& x) {
  return unary(
      "sqrt", sqrt, x, [](auto v) { return std::sqrt(v); },
      [](const SavedOut& s) { return rdiv(s.out, 0.5); });
}

Tensor rsqrt(const Tensor& x) {
  return unary(
      "rsqrt", rsqrt, x, [](auto v) { return 1 / std::sqrt(v); },
      [](const SavedOut& s) { return mul(mul(s.out, mul(s.out, s.out)), -0.5); });
}

Tensor abs(const Tensor& x) {
  return unary(
      "abs", abs, x, [](auto v) { return std::abs(v); }, [](const SavedX& s) { return sign(s.x); });
}

Tensor sign(const Tensor& x) {
  // Piecewise constant: its gradient is zero, so nothing is recorded; a dual input gets a zero
  // tangent.
  Tensor out = unary_kernel("sign", x.detach(), [](auto v) {
    using T = decltype(v);
    return static_cast<T>((v > T(0)) - (v < T(0)));
  });
  if (fwd::detail::propagating() && fwd::detail::is_dual(x))
    fwd::detail::set_tangent(out, zeros_like(out));
  return out;
}

Tensor square(const Tensor& x) { return pow(x, 2.0); }

Tensor sin(const Tensor& x) {
  return unary(
      "sin", sin, x, [](auto v) { return std::sin(v); }, [](const SavedX& s) { return cos(s.x); });
}

Tensor cos(const Tensor& x) {
  return unary(
      "cos", cos, x, [](auto v) { return std::cos(v); },
      [](const SavedX& s) { return neg(sin(s.x)); });
}

Tensor erf(const Tensor& x) {
  return unary(
      "erf", erf, x, [](auto v) { return std::erf(v); },
      [](const SavedX& s) {
        return mul(exp(neg(mul(s.x, s.x))), 2.0 / std::sqrt(std::numbers::pi));
      });
}

Tensor tanh(const Tensor& x) {
  return simd_unary(
      "tanh", tanh, x, [](auto v) { return xsimd::tanh(v); },
      [](const SavedOut& s) { return rsub(mul(s.out, s.out), 1.0); });
}

Tensor sigmoid(const Tensor& x) {
  auto stable = [](auto v) {  // no overflow for large |v|
    using T = decltype(v);
    if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
    T e = std::exp(v);
    return e / (T(1) + e);
  };
  return unary("sigmoid", sigmoid, x, stable,
               [](const SavedOut& s) { return mul(s.out, rsub(s.out, 1.0)); });
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  if (lo > hi) fail<ValueError>("clamp: lower bound {} exceeds upper bound {}", lo, hi);
  Tensor out = unary_kernel("clamp", x, [lo, hi](auto v) {
    using T = decltype(v);
    return v < T(lo) ? T(lo) : (v > T(hi) ? T(hi) : v);
  });
  if (needs_derivatives({&x}))
    record(op("clamp", clamp, x, lo, hi), out, SavedX{x},
           rules::elementwise([lo, hi](const SavedX& s) {
             // 1 inside [lo, hi], 0 outside: a constant mask.
             return unary_kernel("clamp", s.x.detach(), [lo, hi](auto v) {
               using T = decltype(v);
               return static_cast<T>(v >= T(lo) && v <= T(hi));
             });
           }));
  return out;
}

}  // namespace ag
