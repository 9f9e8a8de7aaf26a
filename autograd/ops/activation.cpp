#include "autograd/ops/activation.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "autograd/kernels/bf16.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/kernels/simd.h"
#include "autograd/op.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/unary.h"

namespace ag {

namespace {

// out[i] = f(x[i]) for a float tensor (DtypeError naming `op` otherwise).
template <class F>
Tensor activation_kernel(const char* op, const Tensor& x_in, F f) {
  return kernels::computed(
      x_in.dtype(),
      [&](const Tensor& x) {
        Tensor out = Tensor::empty(x.shape(), x.dtype());
        kernels::dispatch_floating(x.dtype(), op,
                                   [&]<class T>() { kernels::map<T, T>(out, f, x); });
        return out;
      },
      x_in);
}

Tensor scalar_like(const Tensor& t, double v) { return full(Shape{}, v, t.dtype()); }

// The backward ops take a gradient g of the same shape and dtype as `t` (the op's `what`).
void check_gradient_fits(const char* op, const Tensor& g, const Tensor& t, const char* what) {
  if (!(g.shape() == t.shape()))
    fail<ShapeError>("{}: gradient of shape {} for an {} of shape {}", op, g.shape(), what,
                     t.shape());
  if (g.dtype() != t.dtype())
    fail<DtypeError>("{}: gradient dtype {} differs from the {}'s {}", op, dtype_name(g.dtype()),
                     what, dtype_name(t.dtype()));
}

// [x > 0] as a mask (not differentiable).
Tensor positive(const Tensor& x) { return gt(x, scalar_like(x, 0.0)); }

struct SavedX {
  Tensor x;
};
struct SavedOut {
  Tensor out;
};

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

}  // namespace

Tensor relu(const Tensor& x) {
  Tensor out = activation_kernel("relu", x, [](auto v) { return v > decltype(v)(0) ? v : 0; });
  if (needs_derivatives({&x}))
    record(op("relu", relu, x), out, SavedOut{out},
           Rules{.backward = [](const SavedOut& s, const Tensor& g) -> TensorList {
                   return {relu_backward(g, s.out)};
                 },
                 .jvp = [](const SavedOut& s,
                           const TensorList& t) { return relu_backward(t[0], s.out); }});
  return out;
}

Tensor relu_backward(const Tensor& g, const Tensor& out) {
  check_gradient_fits("relu_backward", g, out, "output");
  Tensor r = kernels::computed(
      g.dtype(),
      [](const Tensor& gc, const Tensor& oc) {
        Tensor r = Tensor::empty(gc.shape(), gc.dtype());
        kernels::dispatch_floating(gc.dtype(), "relu_backward", [&]<class T>() {
          kernels::map<T, T, T>(
              r, [](T a, T o) { return o > T(0) ? a : T(0); }, gc, oc);
        });
        return r;
      },
      g, out);
  // Linear in g with a piecewise-constant factor: d/dg = [out > 0], d/dout = 0.
  if (needs_derivatives({&g}))
    record(op("relu_backward", relu_backward, g, Const{out}), r, SavedOut{out},
           rules::linear([](const SavedOut& s, const Tensor& gg) -> TensorList {
             return {relu_backward(gg, s.out)};
           }));
  return r;
}

Tensor leaky_relu(const Tensor& x, double slope) {
  Tensor out = activation_kernel("leaky_relu", x, [slope](auto v) {
    using T = decltype(v);
    return v > T(0) ? v : static_cast<T>(slope) * v;
  });
  if (needs_derivatives({&x}))
    record(op("leaky_relu", leaky_relu, x, slope), out, SavedX{x},
           rules::elementwise([slope](const SavedX& s) {
             return where(positive(s.x), scalar_like(s.x, 1.0), scalar_like(s.x, slope));
           }));
  return out;
}

Tensor elu(const Tensor& x, double alpha) {
  Tensor out = activation_kernel("elu", x, [alpha](auto v) {
    using T = decltype(v);
    return v > T(0) ? v : static_cast<T>(alpha) * std::expm1(v);
  });
  if (needs_derivatives({&x})) {
    struct Saved {
      Tensor x, out;
    };
    // For x <= 0, d/dx alpha (e^x - 1) = alpha e^x = out + alpha.
    record(op("elu", elu, x, alpha), out, Saved{x, out},
           rules::elementwise([alpha](const Saved& s) {
             return where(positive(s.x), scalar_like(s.x, 1.0), add(s.out, alpha));
           }));
  }
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
  Tensor out = kernels::computed(
      x.dtype(),
      [use_tanh](const Tensor& xc) {
        Tensor out = Tensor::empty(xc.shape(), xc.dtype());
        kernels::dispatch_floating(xc.dtype(), "gelu", [&]<class T>() {
          if (use_tanh)
            kernels::map_simd<T>(
                out, [](auto v) { return Gelu<T>::tanh_value(v); }, xc);
          else
            kernels::map_simd<T>(
                out, [](auto v) { return Gelu<T>::erf_value(v); }, xc);
        });
        return out;
      },
      x);
  if (needs_derivatives({&x})) {
    const char* form = use_tanh ? "tanh" : "none";
    record(op("gelu", gelu, x, form), out, SavedX{x},
           Rules{.backward = [form](const SavedX& s, const Tensor& g) -> TensorList {
                   return {gelu_backward(g, s.x, form)};
                 },
                 .jvp = [form](const SavedX& s,
                               const TensorList& t) { return gelu_backward(t[0], s.x, form); }});
  }
  return out;
}

Tensor gelu_backward(const Tensor& g, const Tensor& x, std::string_view approximate) {
  const bool use_tanh = gelu_uses_tanh("gelu_backward", approximate);
  check_gradient_fits("gelu_backward", g, x, "input");
  Tensor out = kernels::computed(
      x.dtype(),
      [use_tanh](const Tensor& gc, const Tensor& xc) {
        Tensor out = Tensor::empty(xc.shape(), xc.dtype());
        kernels::dispatch_floating(xc.dtype(), "gelu_backward", [&]<class T>() {
          if (use_tanh)
            kernels::map_simd<T>(
                out, [](auto a, auto b) { return Gelu<T>::tanh_grad(a, b); }, gc, xc);
          else
            kernels::map_simd<T>(
                out, [](auto a, auto b) { return Gelu<T>::erf_grad(a, b); }, gc, xc);
        });
        return out;
      },
      g, x);
  if (needs_derivatives({&g, &x})) {
    struct Saved {
      Tensor g, x;
    };
    // Partials: d/dg = gelu'(x), d/dx = g gelu''(x).
    const char* form = use_tanh ? "tanh" : "none";
    record(op("gelu_backward", gelu_backward, g, x, form), out, Saved{g, x},
           Rules{.backward = [form, use_tanh](const Saved& s, const Tensor& gg,
                                              const Node& n) -> TensorList {
                   return {n.needs_input_grad(0) ? gelu_backward(gg, s.x, form) : Tensor(),
                           n.needs_input_grad(1) ? mul(mul(gg, s.g), gelu_second(s.x, use_tanh))
                                                 : Tensor()};
                 },
                 .jvp =
                     [form, use_tanh](const Saved& s, const TensorList& t) {
                       Tensor r = t[0].defined() ? gelu_backward(t[0], s.x, form) : Tensor();
                       if (!t[1].defined()) return r;
                       Tensor rx = mul(mul(t[1], s.g), gelu_second(s.x, use_tanh));
                       return r.defined() ? add(r, rx) : rx;
                     }});
  }
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
  if (needs_derivatives({&x}))
    record(op("silu", silu, x), out, SavedX{x}, rules::elementwise([](const SavedX& v) {
             Tensor s = sigmoid(v.x);  // d = s (1 + x (1 - s))
             return mul(s, add(mul(v.x, rsub(s, 1.0)), 1.0));
           }));
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
  if (needs_derivatives({&x}))
    record(op("softplus", softplus, x, beta, threshold), out, SavedX{x},
           rules::elementwise([beta, threshold](const SavedX& s) {
             Tensor bx = mul(s.x, beta);
             return where(gt(bx, scalar_like(bx, threshold)), scalar_like(bx, 1.0), sigmoid(bx));
           }));
  return out;
}

}  // namespace ag
