// The in-place ops, Tensor's members declared in tensor.h (add_, mul_, fill_, copy_, addcmul_...):
// one driver (`inplace`) decides between writing straight into self and recording the op, and each
// op gives its kernel and its out-of-place form.
#include <cmath>
#include <optional>
#include <string_view>

#include "autograd/forward.h"
#include "autograd/kernels/copy.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/node.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/unary.h"
#include "autograd/tensor.h"

namespace ag {

using kernels::dispatch_all;
using kernels::dispatch_floating;

namespace {

// ShapeError unless every defined operand broadcasts to self's shape s (self is never enlarged).
void check_operand_shapes(const char* op, const Shape& s,
                          std::initializer_list<const Tensor*> others) {
  for (const Tensor* o : others) {
    if (!o->defined()) continue;
    Shape b = broadcast_shapes(s, o->shape(), op);
    if (!(b == s))
      fail<ShapeError>("{}: cannot broadcast shape {} into the shape {} of the tensor modified", op,
                       o->shape(), s);
  }
}

// Whether the op on self is recorded: grad mode on, self floating, and self or an operand
// requires grad.
bool records(const TensorImpl& s, std::initializer_list<const Tensor*> others) {
  if (!is_grad_enabled() || !is_floating(s.dtype)) return false;
  if (s.requires_grad) return true;
  for (const Tensor* o : others)
    if (o->defined() && o->requires_grad()) return true;
  return false;
}

// Whether the op propagates a tangent: forward mode on, self floating, and self or an operand a
// dual.
bool propagates_tangent(const Tensor& self, std::initializer_list<const Tensor*> others) {
  if (!fwd::detail::propagating() || !is_floating(self.dtype())) return false;
  if (fwd::detail::is_dual(self)) return true;
  for (const Tensor* o : others)
    if (o->defined() && fwd::detail::is_dual(*o)) return true;
  return false;
}

// The recorded path's refusals: a leaf that requires grad, and a view.
void check_recordable(const char* op, const TensorImpl& s) {
  if (!s.grad_fn && s.requires_grad)
    fail<AutogradError>(
        "{}: a leaf tensor of shape {} that requires grad cannot be modified in place while "
        "recording; do it under NoGradGuard",
        op, s.shape);
  if (s.is_view)
    fail<AutogradError>(
        "{}: in-place modification of a view (shape {}) is not supported while recording; "
        "clone() it first",
        op, s.shape);
}

// self takes the out-of-place result r: its values, and (recorded) its history, and (dual) its
// tangent.
void adopt_result(Tensor& self, const Tensor& r, bool record, bool dual) {
  TensorImpl* s = self.impl();
  Tensor tangent = fwd::detail::tangent_of(r);
  {
    NoGradGuard ng;
    kernels::copy_into(self, r.detach());
  }
  ++s->storage->version;
  if (record) {
    ++s->storage->history;  // views of self taken before now describe the old history
    s->grad_fn = r.impl()->grad_fn;
    s->output_nr = r.impl()->output_nr;
    s->requires_grad = r.requires_grad();  // false when the new value is a constant (fill_)
  }
  if (dual) {
    Tensor old = fwd::detail::tangent_of(self);
    if (old.defined() && tangent.defined() && !old.requires_grad() && !tangent.requires_grad()) {
      fwd::detail::Suspend plain;
      NoGradGuard ng;
      kernels::copy_into(old, tangent);
      ++old.impl()->storage->version;
    } else {
      fwd::detail::set_tangent(self, tangent.defined() ? tangent : zeros_like(self));
    }
  }
}

// In-place ops write straight into self's storage. When autograd records (grad mode on, self a
// floating tensor, and something requires grad), the op is computed out of place from a clone of
// self (so what the op saves for its backward is not overwritten by the write that follows), and
// self takes the result's data and history. In forward mode (self or an operand a dual), self's
// tangent is updated the same way: the out-of-place result's tangent becomes self's (written into
// self's tangent in place when it is a plain tensor, so views sharing it see the change).
template <class OutOfPlace, class Kernel>
Tensor& inplace(Tensor& self, const char* op, std::initializer_list<const Tensor*> others,
                OutOfPlace out_of_place, Kernel kernel) {
  TensorImpl* s = self.impl();
  check_operand_shapes(op, s->shape, others);
  const bool record = records(*s, others), dual = propagates_tangent(self, others);
  if (record) check_recordable(op, *s);
  if (!record && !dual) {
    if (s->dtype == Dtype::bfloat16 && std::string_view(op) != "fill_" &&
        std::string_view(op) != "copy_") {
      // bfloat16: computed in float32 by the out-of-place op, rounded once into self. Not for
      // fill_ and copy_: their kernels move bfloat16 as it is, and fill_'s out-of-place op
      // (full_like) is itself made with fill_.
      NoGradGuard ng;
      kernels::copy_into(self, out_of_place(self));
    } else {
      kernel();
    }
    ++s->storage->version;
    return self;
  }
  Tensor r;
  {
    std::optional<NoGradGuard> ng;
    if (!record) ng.emplace();  // forward mode only: nothing to record
    r = out_of_place(self.clone());
  }
  adopt_result(self, r, record, dual);
  return self;
}

Tensor as_dtype(const Tensor& t, Dtype d) { return t.dtype() == d ? t : t.detach().to(d); }

// In the recorded path, an operand that is self itself (x.mul_(x)) is read from self's clone too.
const Tensor& or_clone(const Tensor& operand, const Tensor& self, const Tensor& clone) {
  return operand.same(self) ? clone : operand;
}

}  // namespace

namespace {
// self += alpha * other, for add_ and sub_ (each reports errors under its own name).
Tensor& add_scaled_(Tensor& self, const char* op, const Tensor& other, double alpha) {
  auto out_of_place = [&](const Tensor& v) { return add(v, or_clone(other, self, v), alpha); };
  return inplace(self, op, {&other}, out_of_place, [&] {
    Tensor o = as_dtype(other, self.dtype());
    dispatch_floating(self.dtype(), op, [&]<class T>() {
      T a = static_cast<T>(alpha);
      if (alpha == 1.0)
        kernels::map<T, T, T>(
            self, [](T x, T y) { return x + y; }, self, o);
      else
        kernels::map<T, T, T>(
            self, [a](T x, T y) { return x + a * y; }, self, o);
    });
  });
}
}  // namespace

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  return add_scaled_(*this, "add_", other, alpha);
}

Tensor& Tensor::add_(double value) {
  return inplace(
      *this, "add_", {}, [&](const Tensor& v) { return add(v, value); },
      [&] {
        dispatch_floating(dtype(), "add_", [&]<class T>() {
          T v = static_cast<T>(value);
          kernels::map<T, T>(
              *this, [v](T x) { return x + v; }, *this);
        });
      });
}

Tensor& Tensor::sub_(const Tensor& other, double alpha) {
  return add_scaled_(*this, "sub_", other, -alpha);
}

Tensor& Tensor::mul_(const Tensor& other) {
  auto out_of_place = [&](const Tensor& v) { return mul(v, or_clone(other, *this, v)); };
  return inplace(*this, "mul_", {&other}, out_of_place, [&] {
    Tensor o = as_dtype(other, dtype());
    dispatch_floating(dtype(), "mul_", [&]<class T>() {
      kernels::map<T, T, T>(
          *this, [](T x, T y) { return x * y; }, *this, o);
    });
  });
}

Tensor& Tensor::mul_(double value) {
  return inplace(
      *this, "mul_", {}, [&](const Tensor& v) { return mul(v, value); },
      [&] {
        dispatch_floating(dtype(), "mul_", [&]<class T>() {
          T v = static_cast<T>(value);
          kernels::map<T, T>(
              *this, [v](T x) { return x * v; }, *this);
        });
      });
}

Tensor& Tensor::div_(const Tensor& other) {
  auto out_of_place = [&](const Tensor& v) { return div(v, or_clone(other, *this, v)); };
  return inplace(*this, "div_", {&other}, out_of_place, [&] {
    Tensor o = as_dtype(other, dtype());
    dispatch_floating(dtype(), "div_", [&]<class T>() {
      kernels::map<T, T, T>(
          *this, [](T x, T y) { return x / y; }, *this, o);
    });
  });
}

Tensor& Tensor::div_(double value) {
  // Recorded: a true division by a 0-d tensor of self's dtype, as the kernel below divides.
  auto out_of_place = [&](const Tensor& v) { return div(v, scalar_tensor(value, v.dtype())); };
  return inplace(*this, "div_", {}, out_of_place, [&] {
    dispatch_floating(dtype(), "div_", [&]<class T>() {
      T v = static_cast<T>(value);
      kernels::map<T, T>(
          *this, [v](T x) { return x / v; }, *this);
    });
  });
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::fill_(double value) {
  return inplace(
      *this, "fill_", {}, [&](const Tensor& v) { return full_like(v, value); },
      [&] {
        dispatch_all(dtype(), "fill_", [&]<class T>() {
          T v = static_cast<T>(value);
          kernels::map<T>(*this, [v]() { return v; });
        });
      });
}

Tensor& Tensor::copy_(const Tensor& src) {
  auto out_of_place = [&](const Tensor&) { return ag::expand(src.to(dtype()), shape()).clone(); };
  return inplace(*this, "copy_", {&src}, out_of_place, [&] { kernels::copy_into(*this, src); });
}

Tensor& Tensor::clamp_(double lo, double hi) {
  return inplace(
      *this, "clamp_", {}, [&](const Tensor& v) { return clamp(v, lo, hi); },
      [&] {
        dispatch_floating(dtype(), "clamp_", [&]<class T>() {
          T l = static_cast<T>(lo), h = static_cast<T>(hi);
          kernels::map<T, T>(
              *this, [l, h](T x) { return x < l ? l : (x > h ? h : x); }, *this);
        });
      });
}

Tensor& Tensor::sqrt_() {
  return inplace(
      *this, "sqrt_", {}, [&](const Tensor& v) { return ag::sqrt(v); },
      [&] {
        dispatch_floating(dtype(), "sqrt_", [&]<class T>() {
          kernels::map<T, T>(
              *this, [](T x) { return std::sqrt(x); }, *this);
        });
      });
}

Tensor& Tensor::addcmul_(const Tensor& a, const Tensor& b, double value) {
  auto out_of_place = [&](const Tensor& v) {
    return add(v, mul(mul(or_clone(a, *this, v), or_clone(b, *this, v)), value));
  };
  return inplace(*this, "addcmul_", {&a, &b}, out_of_place, [&] {
    Tensor x = as_dtype(a, dtype()), y = as_dtype(b, dtype());
    dispatch_floating(dtype(), "addcmul_", [&]<class T>() {
      T v = static_cast<T>(value);
      kernels::map<T, T, T, T>(
          *this, [v](T s, T p, T q) { return s + v * p * q; }, *this, x, y);
    });
  });
}

Tensor& Tensor::addcdiv_(const Tensor& a, const Tensor& b, double value) {
  auto out_of_place = [&](const Tensor& v) {
    return add(v, mul(div(or_clone(a, *this, v), or_clone(b, *this, v)), value));
  };
  return inplace(*this, "addcdiv_", {&a, &b}, out_of_place, [&] {
    Tensor x = as_dtype(a, dtype()), y = as_dtype(b, dtype());
    dispatch_floating(dtype(), "addcdiv_", [&]<class T>() {
      T v = static_cast<T>(value);
      kernels::map<T, T, T, T>(
          *this, [v](T s, T p, T q) { return s + v * p / q; }, *this, x, y);
    });
  });
}

Tensor& Tensor::lerp_(const Tensor& end, double weight) {
  auto out_of_place = [&](const Tensor& v) {
    return add(v, mul(sub(or_clone(end, *this, v), v), weight));
  };
  return inplace(*this, "lerp_", {&end}, out_of_place, [&] {
    Tensor e = as_dtype(end, dtype());
    dispatch_floating(dtype(), "lerp_", [&]<class T>() {
      T w = static_cast<T>(weight);
      kernels::map<T, T, T>(
          *this, [w](T s, T x) { return s + w * (x - s); }, *this, e);
    });
  });
}

}  // namespace ag
