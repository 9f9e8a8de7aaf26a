#include "autograd/ops/elementwise.h"

#include <cmath>

#include "autograd/kernels/bf16.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/op.h"
#include "autograd/ops/unary.h"

namespace ag {

using kernels::dispatch_all;
using kernels::dispatch_floating;
using kernels::dispatch_numeric;
using kernels::map;

namespace {

// Type promotion: bool < int64 < bfloat16 < float32 < float64.
int rank(Dtype d) {
  switch (d) {
    case Dtype::boolean:
      return 0;
    case Dtype::int64:
      return 1;
    case Dtype::bfloat16:
      return 2;
    case Dtype::float32:
      return 3;
    case Dtype::float64:
      return 4;
  }
  return 0;
}
Dtype promote(Dtype a, Dtype b) { return rank(a) >= rank(b) ? a : b; }

Tensor as_dtype(const Tensor& t, Dtype d) { return t.dtype() == d ? t : t.to(d); }

// out = f(a, b) over the broadcast shape, of dtype `d` (computed in float32 when d is bfloat16).
template <class F>
Tensor binary_kernel(const char* op, const Tensor& a, const Tensor& b, Dtype d, F f) {
  const Dtype cd = kernels::compute_dtype(d);
  Tensor x = kernels::cast(a, cd), y = kernels::cast(b, cd);
  Tensor out = empty_broadcast(x, y, cd, op);
  dispatch_numeric(cd, op, [&]<class T>() { map<T, T, T>(out, f, x, y); });
  return kernels::to_storage(out, d);
}

Dtype arith_dtype(const Tensor& a, const Tensor& b) {
  Dtype d = promote(a.dtype(), b.dtype());
  return d == boolean ? int64 : d;
}
Dtype float_dtype(const Tensor& a, const Tensor& b) {
  Dtype d = promote(a.dtype(), b.dtype());
  return is_floating(d) ? d : float32;
}

template <class F>
Tensor compare(const char* op, const Tensor& a, const Tensor& b, F f) {
  Dtype d = promote(a.dtype(), b.dtype());
  Tensor x = as_dtype(a.detach(), d), y = as_dtype(b.detach(), d);
  Tensor out = empty_broadcast(x, y, boolean, op);
  dispatch_all(d, op, [&]<class T>() { map<bool, T, T>(out, f, x, y); });
  return out;
}

// Weight of each input in minimum/maximum (named `op` in errors): 1 for the chosen one, 0.5 each on
// ties.
Tensor choice_weight(const char* op, const Tensor& a, const Tensor& b, bool take_smaller) {
  Dtype d = float_dtype(a, b);
  return binary_kernel(op, a.detach(), b.detach(), d, [take_smaller](auto x, auto y) {
    using T = decltype(x);
    if (x == y) return T(0.5);
    return (take_smaller ? x < y : x > y) ? T(1) : T(0);
  });
}

struct None {};

Tensor extremum(const char* op, const Tensor& a, const Tensor& b, bool smaller) {
  Dtype d = arith_dtype(a, b);
  // A NaN on either side gives NaN (y != y only for a NaN), so that min(a, b) = min(b, a).
  Tensor out = binary_kernel(op, a, b, d, [smaller](auto x, auto y) {
    return (smaller ? y < x : y > x) || y != y ? y : x;
  });
  if (needs_derivatives({&a, &b})) {
    struct Saved {
      Tensor a, b;
    };
    // d/da = w, d/db = 1 - w, w = 1 where a is chosen (0.5 each on ties).
    record(ag::op(op, extremum, op, a, b, smaller), out, Saved{a, b},
           rules::elementwise(
               [op, smaller](const Saved& s) { return choice_weight(op, s.a, s.b, smaller); },
               [op, smaller](const Saved& s) {
                 return rsub(choice_weight(op, s.a, s.b, smaller), 1.0);
               }));
  }
  return out;
}

}  // namespace

Tensor empty_broadcast(const Tensor& a, const Tensor& b, Dtype dtype, const char* op) {
  if (a.shape() == b.shape()) return Tensor::empty(a.shape(), dtype);
  return Tensor::empty(broadcast_shapes(a.shape(), b.shape(), op), dtype);
}

// ---- arithmetic -------------------------------------------------------------------------------

namespace {
// out = a + c * b with c = alpha (add) or -alpha (sub), recorded and reported under `op`.
Tensor add_scaled(const char* op, const Tensor& a, const Tensor& b, double alpha, bool negate) {
  Dtype d = arith_dtype(a, b);
  if (!is_floating(d) && alpha != std::trunc(alpha))
    fail<ValueError>("{}: alpha {} must be a whole number for int64 inputs (shapes {} and {})", op,
                     alpha, a.shape(), b.shape());
  const double c = negate ? -alpha : alpha;
  Tensor out = c == 1.0 ? binary_kernel(op, a, b, d, [](auto x, auto y) { return x + y; })
                        : binary_kernel(op, a, b, d, [c](auto x, auto y) {
                            return x + static_cast<decltype(x)>(c) * y;
                          });
  if (needs_derivatives({&a, &b}))
    record(ag::op(op, add_scaled, op, a, b, alpha, negate), out, None{},
           rules::linear([c](const None&, const Tensor& g, const Node& n) -> TensorList {
             return {g, n.needs_input_grad(1) ? (c == 1.0 ? g : mul(g, c)) : Tensor()};
           }));
  return out;
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b, double alpha) {
  return add_scaled("add", a, b, alpha, false);
}
Tensor sub(const Tensor& a, const Tensor& b, double alpha) {
  return add_scaled("sub", a, b, alpha, true);
}

namespace {
struct SavedAB {
  Tensor a, b;
};
using Binary = Tensor (*)(const Tensor&, const Tensor&);
}  // namespace

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel("mul", a, b, arith_dtype(a, b), [](auto x, auto y) { return x * y; });
  if (needs_derivatives({&a, &b}))
    record(op("mul", Binary(mul), a, b), out, SavedAB{a, b},
           rules::elementwise([](const SavedAB& s) { return s.b; },
                              [](const SavedAB& s) { return s.a; }));
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel("div", a, b, float_dtype(a, b), [](auto x, auto y) { return x / y; });
  if (needs_derivatives({&a, &b}))
    record(op("div", div, a, b), out, SavedAB{a, b},
           Rules{.backward = [](const SavedAB& s, const Tensor& g, const Node& n) -> TensorList {
                   Tensor ga = div(g, s.b);  // d/da = 1/b, d/db = -a/b^2
                   Tensor gb = n.needs_input_grad(1) ? neg(div(mul(ga, s.a), s.b)) : Tensor();
                   return {n.needs_input_grad(0) ? ga : Tensor(), gb};
                 },
                 .jvp =
                     [](const SavedAB& s, const TensorList& t) {
                       Tensor ta = t[0].defined() ? t[0] : zeros(Shape{}, s.a.dtype());
                       Tensor tb =
                           t[1].defined() ? div(mul(t[1], s.a), s.b) : zeros(Shape{}, s.a.dtype());
                       return div(sub(ta, tb), s.b);
                     }});
  return out;
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out =
      binary_kernel("pow", a, b, float_dtype(a, b), [](auto x, auto y) { return std::pow(x, y); });
  if (needs_derivatives({&a, &b})) {
    struct Saved {
      Tensor a, b, out;
    };
    // As in PyTorch, d/da is 0 where b = 0 and d/db is 0 where a = 0 (0^b is constant there),
    // instead of the 0 * inf the formulas would give. There the formula (the branch `where` does
    // not select) is evaluated at a = 1, so that it and its own derivatives stay finite: a
    // gradient of 0 times an infinity would make the second derivatives NaN.
    record(op("pow", Binary(pow), a, b), out, Saved{a, b, out},
           rules::elementwise(
               [](const Saved& s) {
                 Tensor zero = zeros(Shape{}, s.out.dtype()), one = ones(Shape{}, s.out.dtype());
                 Tensor b0 = eq(s.b, zero);
                 Tensor a = where(b0, one, s.a);
                 return where(b0, zero, mul(s.b, pow(a, add(s.b, -1.0))));
               },
               [](const Saved& s) {
                 Tensor zero = zeros(Shape{}, s.out.dtype()), one = ones(Shape{}, s.out.dtype());
                 Tensor a0 = eq(s.a, zero);
                 return where(a0, zero, mul(s.out, log(where(a0, one, s.a))));
               }));
  }
  return out;
}

Tensor minimum(const Tensor& a, const Tensor& b) { return extremum("minimum", a, b, true); }
Tensor maximum(const Tensor& a, const Tensor& b) { return extremum("maximum", a, b, false); }

// ---- with a scalar ------------------------------------------------------------------------------

namespace {
template <class F>
Tensor scalar_kernel(const char* op, const Tensor& a, F f) {
  Tensor x = is_floating(a.dtype()) ? kernels::in_compute(a) : a.to(float32);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), op, [&]<class T>() { map<T, T>(out, f, x); });
  return kernels::to_storage(out, a.dtype());
}
}  // namespace

using Scalar = Tensor (*)(const Tensor&, double);

Tensor add(const Tensor& a, double s) {
  Tensor out = scalar_kernel("add", a, [s](auto x) { return x + static_cast<decltype(x)>(s); });
  if (needs_derivatives({&a}))
    record(op("add", Scalar(add), a, s), out, None{},
           Rules{.backward = [](const None&, const Tensor& g) -> TensorList { return {g}; },
                 .jvp = [](const None&, const TensorList& t) { return t[0]; }});
  return out;
}

Tensor mul(const Tensor& a, double s) {
  Tensor out = scalar_kernel("mul", a, [s](auto x) { return x * static_cast<decltype(x)>(s); });
  if (needs_derivatives({&a}))
    record(op("mul", Scalar(mul), a, s), out, None{},
           rules::linear([s](const None&, const Tensor& g) -> TensorList { return {mul(g, s)}; }));
  return out;
}

Tensor rsub(const Tensor& a, double s) {
  Tensor out = scalar_kernel("rsub", a, [s](auto x) { return static_cast<decltype(x)>(s) - x; });
  if (needs_derivatives({&a}))
    record(op("rsub", rsub, a, s), out, None{},
           Rules{.backward = [](const None&, const Tensor& g) -> TensorList { return {neg(g)}; },
                 .jvp = [](const None&, const TensorList& t) { return neg(t[0]); }});
  return out;
}

Tensor rdiv(const Tensor& a, double s) {
  Tensor out = scalar_kernel("rdiv", a, [s](auto x) { return static_cast<decltype(x)>(s) / x; });
  if (needs_derivatives({&a})) {
    struct Saved {
      Tensor a, out;
    };
    // d = -s/a^2 = -out/a
    record(op("rdiv", rdiv, a, s), out, Saved{a, out},
           rules::elementwise([](const Saved& v) { return neg(div(v.out, v.a)); }));
  }
  return out;
}

Tensor pow(const Tensor& a, double p) {
  Tensor out = p == 2.0 ? scalar_kernel("pow", a, [](auto x) { return x * x; })
                        : scalar_kernel("pow", a, [p](auto x) {
                            return std::pow(x, static_cast<decltype(x)>(p));
                          });
  if (needs_derivatives({&a})) {
    struct Saved {
      Tensor a;
    };
    record(op("pow", Scalar(pow), a, p), out, Saved{a}, rules::elementwise([p](const Saved& s) {
             if (p == 0.0) return zeros(Shape{}, s.a.dtype());  // a^0 = 1, also at a = 0
             if (p == 2.0) return mul(s.a, 2.0);
             if (p == 1.0) return ones(Shape{}, s.a.dtype());
             return mul(pow(s.a, p - 1.0), p);
           }));
  }
  return out;
}

Tensor pow(double s, const Tensor& a) {
  Tensor out =
      scalar_kernel("pow", a, [s](auto x) { return std::pow(static_cast<decltype(x)>(s), x); });
  if (needs_derivatives({&a})) {
    struct Saved {
      Tensor out;
    };
    // 0^x is piecewise constant (0 for x > 0, 1 at 0, inf below): its derivative is 0, not the
    // NaN of 0 * log(0).
    record(op("pow", static_cast<Tensor (*)(double, const Tensor&)>(pow), s, a), out, Saved{out},
           rules::elementwise([s](const Saved& v) {
             if (s == 0.0) return zeros(Shape{}, v.out.dtype());
             return mul(v.out, std::log(s));
           }));
  }
  return out;
}

// ---- comparisons and masks
// -------------------------------------------------------------------------

Tensor eq(const Tensor& a, const Tensor& b) {
  return compare("eq", a, b, [](auto x, auto y) { return x == y; });
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return compare("ne", a, b, [](auto x, auto y) { return x != y; });
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return compare("lt", a, b, [](auto x, auto y) { return x < y; });
}
Tensor le(const Tensor& a, const Tensor& b) {
  return compare("le", a, b, [](auto x, auto y) { return x <= y; });
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return compare("gt", a, b, [](auto x, auto y) { return x > y; });
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return compare("ge", a, b, [](auto x, auto y) { return x >= y; });
}

Tensor logical_not(const Tensor& m) {
  Tensor x = as_dtype(m.detach(), boolean);
  Tensor out = Tensor::empty(x.shape(), boolean);
  map<bool, bool>(
      out, [](bool v) { return !v; }, x);
  return out;
}
Tensor logical_and(const Tensor& a, const Tensor& b) {
  return compare("logical_and", as_dtype(a.detach(), boolean), as_dtype(b.detach(), boolean),
                 [](auto x, auto y) { return bool(x) && bool(y); });
}
Tensor logical_or(const Tensor& a, const Tensor& b) {
  return compare("logical_or", as_dtype(a.detach(), boolean), as_dtype(b.detach(), boolean),
                 [](auto x, auto y) { return bool(x) || bool(y); });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  if (cond.dtype() != boolean)
    fail<DtypeError>("where: condition must be a bool mask, got {}", dtype_name(cond.dtype()));
  Dtype d = arith_dtype(a, b);
  Tensor x = as_dtype(a, d), y = as_dtype(b, d);
  Shape s =
      broadcast_shapes(broadcast_shapes(cond.shape(), x.shape(), "where"), y.shape(), "where");
  Tensor out = Tensor::empty(s, d);
  dispatch_all(d, "where", [&]<class T>() {
    map<T, bool, T, T>(
        out, [](bool c, T p, T q) { return c ? p : q; }, cond, x, y);
  });
  if (needs_derivatives({&a, &b})) {
    struct Saved {
      Tensor cond;
    };
    record(op("where", where, Const{cond}, a, b), out, Saved{cond.detach()},
           rules::linear([](const Saved& s, const Tensor& g, const Node& n) -> TensorList {
             Tensor zero = zeros(Shape{}, g.dtype());
             return {n.needs_input_grad(0) ? where(s.cond, g, zero) : Tensor(),
                     n.needs_input_grad(1) ? where(s.cond, zero, g) : Tensor()};
           }));
  }
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  if (mask.dtype() != boolean)
    fail<DtypeError>("masked_fill: mask must be a bool tensor, got {}", dtype_name(mask.dtype()));
  Shape s = broadcast_shapes(x.shape(), mask.shape(), "masked_fill");
  if (!(s == x.shape()))
    fail<ShapeError>("masked_fill: mask of shape {} does not broadcast to the input shape {}",
                     mask.shape(), x.shape());
  return where(mask, scalar_tensor(value, x.dtype()), x);
}

// ---- operators --------------------------------------------------------------------------------

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
Tensor operator-(double s, const Tensor& a) { return rsub(a, s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
Tensor operator/(double s, const Tensor& a) { return rdiv(a, s); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator<(const Tensor& a, double s) {
  return lt(a, scalar_tensor(s, is_floating(a.dtype()) ? a.dtype() : float64));
}
Tensor operator<=(const Tensor& a, double s) {
  return le(a, scalar_tensor(s, is_floating(a.dtype()) ? a.dtype() : float64));
}
Tensor operator>(const Tensor& a, double s) {
  return gt(a, scalar_tensor(s, is_floating(a.dtype()) ? a.dtype() : float64));
}
Tensor operator>=(const Tensor& a, double s) {
  return ge(a, scalar_tensor(s, is_floating(a.dtype()) ? a.dtype() : float64));
}

}  // namespace ag
