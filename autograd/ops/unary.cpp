#include "autograd/ops/unary.h"

#include <cmath>
#include <numbers>

#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/kernels/simd.h"
#include "autograd/node.h"
#include "autograd/ops/elementwise.h"

namespace ag {

namespace {

// out[i] = f(x[i]) on a float tensor (integer inputs are converted to float32 first).
template <class F>
Tensor unary_kernel(const char* op, const Tensor& x, F f) {
  Tensor in = is_floating(x.dtype()) ? x : x.to(float32);
  Tensor out = Tensor::empty(in.shape(), in.dtype());
  kernels::dispatch_floating(in.dtype(), op, [&]<class T>() { kernels::map<T, T>(out, f, in); });
  return out;
}

// The same for formulas with transcendental functions, written with xsimd's (kernels/simd.h) so
// that contiguous data is computed a whole SIMD register at a time.
template <class F>
Tensor simd_unary_kernel(const char* op, const Tensor& x, F f) {
  Tensor in = is_floating(x.dtype()) ? x : x.to(float32);
  Tensor out = Tensor::empty(in.shape(), in.dtype());
  kernels::dispatch_floating(in.dtype(), op, [&]<class T>() { kernels::map_simd<T>(out, f, in); });
  return out;
}

}  // namespace

Tensor neg(const Tensor& x) {
  Tensor out = is_floating(x.dtype()) || x.dtype() == int64
                   ? [&] {
                       Tensor o = Tensor::empty(x.shape(), x.dtype());
                       kernels::dispatch_numeric(x.dtype(), "neg", [&]<class T>() {
                         kernels::map<T, T>(o, [](T v) { return -v; }, x);
                       });
                       return o;
                     }()
                   : unary_kernel("neg", x, [](auto v) { return -v; });
  if (any_requires_grad({&x}))
    record(
        "neg", {&x}, out, {}, [](Node&, const Tensor& g) -> TensorList { return {neg(g)}; },
        [](const TensorList& a) { return neg(a[0]); });
  return out;
}

Tensor exp(const Tensor& x) {
  Tensor out = simd_unary_kernel("exp", x, [](auto v) { return xsimd::exp(v); });
  if (any_requires_grad({&x}))
    record(
        "exp", {&x}, out, {Save{out, true}},
        [](Node& n, const Tensor& g) -> TensorList { return {mul(g, n.saved(0))}; },
        [](const TensorList& a) { return exp(a[0]); });
  return out;
}

Tensor log(const Tensor& x) {
  Tensor out = unary_kernel("log", x, [](auto v) { return std::log(v); });
  if (any_requires_grad({&x}))
    record(
        "log", {&x}, out, {Save{x}},
        [](Node& n, const Tensor& g) -> TensorList { return {div(g, n.saved(0))}; },
        [](const TensorList& a) { return log(a[0]); });
  return out;
}

Tensor log1p(const Tensor& x) {
  Tensor out = unary_kernel("log1p", x, [](auto v) { return std::log1p(v); });
  if (any_requires_grad({&x}))
    record(
        "log1p", {&x}, out, {Save{x}},
        [](Node& n, const Tensor& g) -> TensorList { return {div(g, add(n.saved(0), 1.0))}; },
        [](const TensorList& a) { return log1p(a[0]); });
  return out;
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary_kernel("sqrt", x, [](auto v) { return std::sqrt(v); });
  if (any_requires_grad({&x}))
    record(
        "sqrt", {&x}, out, {Save{out, true}},
        [](Node& n, const Tensor& g) -> TensorList { return {div(mul(g, 0.5), n.saved(0))}; },
        [](const TensorList& a) { return sqrt(a[0]); });
  return out;
}

Tensor rsqrt(const Tensor& x) {
  Tensor out = unary_kernel("rsqrt", x, [](auto v) { return 1 / std::sqrt(v); });
  if (any_requires_grad({&x}))
    record(
        "rsqrt", {&x}, out, {Save{out, true}},
        [](Node& n, const Tensor& g) -> TensorList {
          Tensor y = n.saved(0);
          return {mul(mul(g, mul(y, mul(y, y))), -0.5)};
        },
        [](const TensorList& a) { return rsqrt(a[0]); });
  return out;
}

Tensor abs(const Tensor& x) {
  Tensor out = unary_kernel("abs", x, [](auto v) { return std::abs(v); });
  if (any_requires_grad({&x}))
    record(
        "abs", {&x}, out, {Save{x}},
        [](Node& n, const Tensor& g) -> TensorList { return {mul(g, sign(n.saved(0)))}; },
        [](const TensorList& a) { return abs(a[0]); });
  return out;
}

Tensor sign(const Tensor& x) {
  // Piecewise constant: its gradient is zero, so nothing is recorded.
  return unary_kernel("sign", x.detach(), [](auto v) {
    using T = decltype(v);
    return static_cast<T>((v > T(0)) - (v < T(0)));
  });
}

Tensor square(const Tensor& x) { return pow(x, 2.0); }

Tensor sin(const Tensor& x) {
  Tensor out = unary_kernel("sin", x, [](auto v) { return std::sin(v); });
  if (any_requires_grad({&x}))
    record(
        "sin", {&x}, out, {Save{x}},
        [](Node& n, const Tensor& g) -> TensorList { return {mul(g, cos(n.saved(0)))}; },
        [](const TensorList& a) { return sin(a[0]); });
  return out;
}

Tensor cos(const Tensor& x) {
  Tensor out = unary_kernel("cos", x, [](auto v) { return std::cos(v); });
  if (any_requires_grad({&x}))
    record(
        "cos", {&x}, out, {Save{x}},
        [](Node& n, const Tensor& g) -> TensorList { return {neg(mul(g, sin(n.saved(0))))}; },
        [](const TensorList& a) { return cos(a[0]); });
  return out;
}

Tensor erf(const Tensor& x) {
  Tensor out = unary_kernel("erf", x, [](auto v) { return std::erf(v); });
  if (any_requires_grad({&x}))
    record(
        "erf", {&x}, out, {Save{x}},
        [](Node& n, const Tensor& g) -> TensorList {
          Tensor a = n.saved(0);
          return {mul(g, mul(exp(neg(mul(a, a))), 2.0 / std::sqrt(std::numbers::pi)))};
        },
        [](const TensorList& a) { return erf(a[0]); });
  return out;
}

Tensor tanh(const Tensor& x) {
  Tensor out = simd_unary_kernel("tanh", x, [](auto v) { return xsimd::tanh(v); });
  if (any_requires_grad({&x}))
    record(
        "tanh", {&x}, out, {Save{out, true}},
        [](Node& n, const Tensor& g) -> TensorList {
          Tensor y = n.saved(0);
          return {mul(g, rsub(mul(y, y), 1.0))};
        },
        [](const TensorList& a) { return tanh(a[0]); });
  return out;
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = unary_kernel("sigmoid", x, [](auto v) {
    using T = decltype(v);
    // stable for large |v|
    if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
    T e = std::exp(v);
    return e / (T(1) + e);
  });
  if (any_requires_grad({&x}))
    record(
        "sigmoid", {&x}, out, {Save{out, true}},
        [](Node& n, const Tensor& g) -> TensorList {
          Tensor y = n.saved(0);
          return {mul(g, mul(y, rsub(y, 1.0)))};
        },
        [](const TensorList& a) { return sigmoid(a[0]); });
  return out;
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  if (lo > hi) fail<ValueError>("clamp: lower bound {} exceeds upper bound {}", lo, hi);
  Tensor out = unary_kernel("clamp", x, [lo, hi](auto v) {
    using T = decltype(v);
    return v < T(lo) ? T(lo) : (v > T(hi) ? T(hi) : v);
  });
  if (any_requires_grad({&x}))
    record(
        "clamp", {&x}, out, {Save{x}},
        [lo, hi](Node& n, const Tensor& g) -> TensorList {
          Tensor a = n.saved(0);
          Tensor inside = unary_kernel("clamp", a.detach(), [lo, hi](auto v) {
            using T = decltype(v);
            return static_cast<T>(v >= T(lo) && v <= T(hi));
          });
          return {mul(g, inside)};
        },
        [lo, hi](const TensorList& a) { return clamp(a[0], lo, hi); });
  return out;
}

}  // namespace ag
