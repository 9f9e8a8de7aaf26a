#include "autograd/ops/activation.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/kernels/simd.h"
#include "autograd/node.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/unary.h"

namespace ag {

namespace {

// out[i] = f(x[i]) for a float tensor (DtypeError naming `op` otherwise).
template <class F>
Tensor activation_kernel(const char* op, const Tensor& x, F f) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  kernels::dispatch_floating(x.dtype(), op, [&]<class T>() { kernels::map<T, T>(out, f, x); });
  return out;
}

Tensor scalar_like(const Tensor& t, double v) { return full(Shape{}, v, t.dtype()); }

// [x > 0] as a mask (not differentiable).
Tensor positive(const Tensor& x) { return gt(x, scalar_like(x, 0.0)); }

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

}  // namespace

Tensor relu(const Tensor& x) {
  Tensor out = activation_kernel("relu", x, [](auto v) { return v > decltype(v)(0) ? v : 0; });
  if (any_requires_grad({&x}))
    record(
        "relu", {&x}, out, {Save{out, true}},
        [](Node& n, const Tensor& g) -> TensorList { return {relu_backward(g, n.saved(0))}; },
        [](const TensorList& a) { return relu(a[0]); });
  return out;
}

Tensor relu_backward(const Tensor& g, const Tensor& out) {
  if (!(g.shape() == out.shape()))
    fail<ShapeError>("relu_backward: gradient of shape {} for an output of shape {}", g.shape(),
                     out.shape());
  if (g.dtype() != out.dtype())
    fail<DtypeError>("relu_backward: gradient dtype {} differs from the output's {}",
                     dtype_name(g.dtype()), dtype_name(out.dtype()));
  Tensor r = Tensor::empty(g.shape(), g.dtype());
  kernels::dispatch_floating(g.dtype(), "relu_backward", [&]<class T>() {
    kernels::map<T, T, T>(
        r, [](T a, T o) { return o > T(0) ? a : T(0); }, g, out);
  });
  // Linear in g with a piecewise-constant factor: d/dg = [out > 0], d/dout = 0.
  if (any_requires_grad({&g}))
    record(
        "relu_backward", {&g}, r, {Save{out}},
        [](Node& n, const Tensor& gg) -> TensorList { return {relu_backward(gg, n.saved(0))}; },
        [o = out.detach()](const TensorList& a) { return relu_backward(a[0], o); });
  return r;
}

Tensor leaky_relu(const Tensor& x, double slope) {
  Tensor out = activation_kernel("leaky_relu", x, [slope](auto v) {
    using T = decltype(v);
    return v > T(0) ? v : static_cast<T>(slope) * v;
  });
  if (any_requires_grad({&x}))
    record(
        "leaky_relu", {&x}, out, {Save{x}},
        [slope](Node& n, const Tensor& g) -> TensorList {
          return {where(positive(n.saved(0)), g, mul(g, slope))};
        },
        [slope](const TensorList& a) { return leaky_relu(a[0], slope); });
  return out;
}

Tensor elu(const Tensor& x, double alpha) {
  Tensor out = activation_kernel("elu", x, [alpha](auto v) {
    using T = decltype(v);
    return v > T(0) ? v : static_cast<T>(alpha) * std::expm1(v);
  });
  if (any_requires_grad({&x}))
    record(
        "elu", {&x}, out, {Save{x}, Save{out, true}},
        [alpha](Node& n, const Tensor& g) -> TensorList {
          // For x <= 0, d/dx alpha (e^x - 1) = alpha e^x = out + alpha.
          return {where(positive(n.saved(0)), g, mul(g, add(n.saved(1), alpha)))};
        },
        [alpha](const TensorList& a) { return elu(a[0], alpha); });
  return out;
}

namespace {

bool gelu_uses_tanh(const char* op, std::string_view approximate) {
  if (approximate != "tanh" && approximate != "none")
    fail<ValueError>("{}: approximate must be 'none' or 'tanh', got '{}'", op, approximate);
  return approximate == "tanh";
}

// The formulas, written once for scalars and xsimd batches (kernels/simd.h).
template <class T>
struct Gelu {
  static constexpr T c = T(kSqrt2OverPi), k = T(kGeluCubic), r = T(std::numbers::sqrt2 / 2);
  static constexpr T inv_sqrt_2pi = T(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
  static auto tanh_value(auto v) {
    return T(0.5) * v * (T(1) + xsimd::tanh(c * (v + k * v * v * v)));
  }
  static auto erf_value(auto v) { return T(0.5) * v * (T(1) + xsimd::erf(v * r)); }
  // g * gelu'(x)
  static auto tanh_grad(auto g, auto v) {
    auto v2 = v * v;
    auto t = xsimd::tanh(c * (v + k * v2 * v));
    auto du = c * (T(1) + T(3) * k * v2);
    return g * (T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * du);
  }
  static auto erf_grad(auto g, auto v) {
    return g *
           (T(0.5) * (T(1) + xsimd::erf(v * r)) + v * inv_sqrt_2pi * xsimd::exp(T(-0.5) * v * v));
  }
};

// gelu''(x), with differentiable ops (only reached by second derivatives).
Tensor gelu_second(const Tensor& a, bool use_tanh) {
  if (use_tanh) {
    Tensor a2 = mul(a, a);
    Tensor t = tanh(mul(add(a, mul(mul(a2, a), kGeluCubic)), kSqrt2OverPi));
    Tensor du = add(mul(a2, 3 * kGeluCubic * kSqrt2OverPi), kSqrt2OverPi);
    Tensor ddu = mul(a, 6 * kGeluCubic * kSqrt2OverPi);
    Tensor inner = add(du, mul(mul(a, sub(ddu, mul(mul(t, mul(du, du)), 2.0))), 0.5));
    return mul(rsub(mul(t, t), 1.0), inner);
  }
  Tensor pdf = mul(exp(mul(mul(a, a), -0.5)), 0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
  return mul(pdf, rsub(mul(a, a), 2.0));
}

}  // namespace

Tensor gelu(const Tensor& x, std::string_view approximate) {
  const bool use_tanh = gelu_uses_tanh("gelu", approximate);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  kernels::dispatch_floating(x.dtype(), "gelu", [&]<class T>() {
    if (use_tanh)
      kernels::map_simd<T>(
          out, [](auto v) { return Gelu<T>::tanh_value(v); }, x);
    else
      kernels::map_simd<T>(
          out, [](auto v) { return Gelu<T>::erf_value(v); }, x);
  });
  if (any_requires_grad({&x}))
    record(
        "gelu", {&x}, out, {Save{x}},
        [use_tanh](Node& n, const Tensor& g) -> TensorList {
          return {gelu_backward(g, n.saved(0), use_tanh ? "tanh" : "none")};
        },
        [use_tanh](const TensorList& a) { return gelu(a[0], use_tanh ? "tanh" : "none"); });
  return out;
}

Tensor gelu_backward(const Tensor& g, const Tensor& x, std::string_view approximate) {
  const bool use_tanh = gelu_uses_tanh("gelu_backward", approximate);
  if (!(g.shape() == x.shape()))
    fail<ShapeError>("gelu_backward: gradient of shape {} for an input of shape {}", g.shape(),
                     x.shape());
  if (g.dtype() != x.dtype())
    fail<DtypeError>("gelu_backward: gradient dtype {} differs from the input's {}",
                     dtype_name(g.dtype()), dtype_name(x.dtype()));
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  kernels::dispatch_floating(x.dtype(), "gelu_backward", [&]<class T>() {
    if (use_tanh)
      kernels::map_simd<T>(
          out, [](auto a, auto b) { return Gelu<T>::tanh_grad(a, b); }, g, x);
    else
      kernels::map_simd<T>(
          out, [](auto a, auto b) { return Gelu<T>::erf_grad(a, b); }, g, x);
  });
  if (any_requires_grad({&g, &x}))
    record(
        "gelu_backward", {&g, &x}, out, {Save{g}, Save{x}},
        [use_tanh](Node& n, const Tensor& gg) -> TensorList {
          const char* form = use_tanh ? "tanh" : "none";
          Tensor x = n.saved(1);
          return {n.needs_input_grad(0) ? gelu_backward(gg, x, form) : Tensor(),
                  n.needs_input_grad(1) ? mul(mul(gg, n.saved(0)), gelu_second(x, use_tanh))
                                        : Tensor()};
        },
        [use_tanh](const TensorList& a) {
          return gelu_backward(a[0], a[1], use_tanh ? "tanh" : "none");
        });
  return out;
}

Tensor silu(const Tensor& x) {
  Tensor out = activation_kernel("silu", x, [](auto v) {
    using T = decltype(v);
    // v * sigmoid(v), with the sigmoid written so that exp never overflows.
    if (v >= T(0)) return v / (T(1) + std::exp(-v));
    T e = std::exp(v);
    return v * e / (T(1) + e);
  });
  if (any_requires_grad({&x}))
    record(
        "silu", {&x}, out, {Save{x}},
        [](Node& n, const Tensor& g) -> TensorList {
          Tensor a = n.saved(0);
          Tensor s = sigmoid(a);
          return {mul(g, mul(s, add(mul(a, rsub(s, 1.0)), 1.0)))};
        },
        [](const TensorList& a) { return silu(a[0]); });
  return out;
}

Tensor softplus(const Tensor& x, double beta, double threshold) {
  if (!(beta > 0))
    fail<ValueError>("softplus: beta must be positive, got {} (input {})", beta, x.shape());
  Tensor out = activation_kernel("softplus", x, [beta, threshold](auto v) {
    using T = decltype(v);
    T bx = static_cast<T>(beta) * v;
    if (bx > static_cast<T>(threshold)) return v;
    // log(1 + e^bx) = max(bx, 0) + log1p(e^-|bx|): no overflow for large bx.
    return (std::max(bx, T(0)) + std::log1p(std::exp(-std::abs(bx)))) / static_cast<T>(beta);
  });
  if (any_requires_grad({&x}))
    record(
        "softplus", {&x}, out, {Save{x}},
        [beta, threshold](Node& n, const Tensor& g) -> TensorList {
          Tensor bx = mul(n.saved(0), beta);
          return {where(gt(bx, scalar_like(bx, threshold)), g, mul(g, sigmoid(bx)))};
        },
        [beta, threshold](const TensorList& a) { return softplus(a[0], beta, threshold); });
  return out;
}

}  // namespace ag
