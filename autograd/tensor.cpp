#include "autograd/tensor.h"

#include <cstring>
#include <optional>

#include "autograd/engine.h"
#include "autograd/forward.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/node.h"
#include "autograd/op.h"
#include "autograd/ops/activation.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/linalg.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/unary.h"

namespace ag {

using kernels::dispatch_all;
using kernels::dispatch_floating;

std::string to_string(const Shape& s) {
  std::string r = "[";
  for (int64_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

int64_t checked_numel(const Shape& shape, const char* op) {
  // The product of the non-zero sizes, so that no product of some of the sizes can overflow later
  // (a shape [0, 2^62, 4] would overflow its strides, [2^40, 2^40, 0] a flatten of its first axes).
  int64_t nonzero = 1;
  bool overflow = false, zero = false;
  for (int64_t d : shape) {
    if (d < 0) fail<ShapeError>("{}: negative size {} in shape {}", op, d, shape);
    if (d == 0)
      zero = true;
    else
      overflow = overflow || __builtin_mul_overflow(nonzero, d, &nonzero);
  }
  if (overflow && zero)
    fail<MemoryError>(
        "{}: shape {} has 0 elements, but the product of its other sizes does not fit in a 64-bit "
        "count (its strides would overflow)",
        op, shape);
  if (overflow)
    fail<MemoryError>("{}: shape {} has more elements than fit in a 64-bit count", op, shape);
  return zero ? 0 : nonzero;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st;
  st.resize(shape.size());
  int64_t acc = 1;
  for (int64_t i = shape.size() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  int64_t n = std::max(a.size(), b.size());
  Shape r;
  r.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t ai = i - (n - a.size()), bi = i - (n - b.size());
    int64_t x = ai >= 0 ? a[ai] : 1, y = bi >= 0 ? b[bi] : 1;
    if (x != y && x != 1 && y != 1)
      fail<ShapeError>("{}: shapes {} and {} cannot be broadcast (axis {}: {} vs {})", op, a, b,
                       i, x, y);
    r[i] = x == 1 ? y : x;
  }
  return r;
}

int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op) {
  int64_t n = ndim == 0 ? 1 : ndim;
  if (axis < -n || axis >= n)
    fail<IndexError>("{}: axis {} is out of range for a tensor with {} axes", op, axis, ndim);
  return axis < 0 ? axis + n : axis;
}

// ---------------------------------------------------------------------------------------------
// construction

Tensor Tensor::empty(const Shape& shape, Dtype dtype) {
  int64_t n = checked_numel(shape, "empty");
  size_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(n), itemsize(dtype), &bytes))
    fail<MemoryError>("empty: a {} tensor of shape {} would take more bytes than fit in 64 bits",
                      dtype_name(dtype), shape);
  auto impl = std::make_shared<TensorImpl>();
  try {
    impl->storage = Storage::allocate(bytes);
  } catch (const MemoryError& e) {
    fail<MemoryError>("empty: cannot allocate a {} tensor of shape {} ({} bytes): {}",
                      dtype_name(dtype), shape, bytes, e.what());
  }
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  if (static_cast<int64_t>(values.size()) != checked_numel(shape, "from_vector"))
    fail<ShapeError>("from_vector: {} values do not fill shape {} ({} elements)", values.size(),
                     shape, shape.numel());
  using S = std::conditional_t<std::is_same_v<T, int>, int64_t, T>;
  Tensor t = empty(shape, dtype_of<S>::value);
  S* p = t.data<S>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<S>(values[i]);
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int>&, const Shape&);

Tensor::Tensor(double scalar) : Tensor(full(Shape{}, scalar)) {}

Tensor::Tensor(std::initializer_list<double> values)
    : Tensor(from_vector(std::vector<float>(values.begin(), values.end()))) {}

Tensor::Tensor(std::initializer_list<std::initializer_list<double>> values) {
  std::vector<float> flat;
  int64_t cols = values.size() ? static_cast<int64_t>(values.begin()->size()) : 0;
  for (auto& row : values) {
    if (static_cast<int64_t>(row.size()) != cols)
      fail<ShapeError>("Tensor: nested list rows have different lengths ({} and {})", cols,
                       row.size());
    flat.insert(flat.end(), row.begin(), row.end());
  }
  *this = from_vector(flat, Shape{static_cast<int64_t>(values.size()), cols});
}

Tensor::Tensor(
    std::initializer_list<std::initializer_list<std::initializer_list<double>>> values) {
  std::vector<float> flat;
  int64_t rows = values.size() ? static_cast<int64_t>(values.begin()->size()) : 0;
  int64_t cols = rows ? static_cast<int64_t>(values.begin()->begin()->size()) : 0;
  for (auto& m : values) {
    if (static_cast<int64_t>(m.size()) != rows)
      fail<ShapeError>("Tensor: nested list blocks have different lengths ({} and {})", rows,
                       m.size());
    for (auto& row : m) {
      if (static_cast<int64_t>(row.size()) != cols)
        fail<ShapeError>("Tensor: nested list rows have different lengths ({} and {})", cols,
                         row.size());
      flat.insert(flat.end(), row.begin(), row.end());
    }
  }
  *this = from_vector(flat, Shape{static_cast<int64_t>(values.size()), rows, cols});
}

// ---------------------------------------------------------------------------------------------
// metadata and data access

TensorImpl* Tensor::impl() const {
  if (!impl_) fail<ValueError>("operation on an undefined tensor");
  return impl_.get();
}

int64_t Tensor::size(int64_t axis) const {
  return shape()[normalize_axis(axis, dim(), "size")];
}

bool Tensor::is_contiguous() const {
  const TensorImpl& t = *impl();
  int64_t acc = 1;
  for (int64_t i = t.shape.size() - 1; i >= 0; --i) {
    if (t.shape[i] != 1 && t.strides[i] != acc) return false;
    acc *= t.shape[i];
  }
  return true;
}

namespace {
double read_element(const TensorImpl& t, int64_t offset) {
  return dispatch_all(t.dtype, "item", [&]<class T>() -> double {
    return static_cast<double>(static_cast<const T*>(t.storage->data)[offset]);
  });
}
}  // namespace

double Tensor::item() const {
  if (numel() != 1)
    fail<ShapeError>("item: tensor of shape {} has {} elements, expected 1", shape(), numel());
  return read_element(*impl(), offset());
}

double Tensor::at(std::initializer_list<int64_t> index) const {
  if (static_cast<int64_t>(index.size()) != dim())
    fail<IndexError>("at: {} indices given for a tensor of shape {}", index.size(), shape());
  int64_t off = offset(), i = 0;
  for (int64_t v : index) {
    int64_t n = shape()[i];
    if (v < -n || v >= n)
      fail<IndexError>("at: index {} is out of range for axis {} of size {} (shape {})", v, i, n,
                       shape());
    off += (v < 0 ? v + n : v) * strides()[i];
    ++i;
  }
  return read_element(*impl(), off);
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = detach().to(dtype_of<T>::value).contiguous();
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;

// ---------------------------------------------------------------------------------------------
// autograd metadata

Tensor& Tensor::requires_grad_(bool flag) {
  TensorImpl* t = impl();
  if (flag && !is_floating(t->dtype))
    fail<DtypeError>("requires_grad_: only float tensors can require gradients, got {}",
                     dtype_name(t->dtype));
  if (!flag && t->grad_fn)
    fail<AutogradError>(
        "requires_grad_(false): tensor of shape {} is the output of {}; use detach() instead",
        t->shape, t->grad_fn->name());
  t->requires_grad = flag;
  return *this;
}

Tensor Tensor::grad() const { return impl()->grad ? Tensor(impl()->grad) : Tensor(); }

void Tensor::set_grad(const Tensor& g) {
  if (g.defined() && !(g.shape() == shape()))
    fail<ShapeError>("set_grad: gradient of shape {} for a tensor of shape {}", g.shape(),
                     shape());
  impl()->grad = g.defined() ? g.impl_ptr() : nullptr;
}

void Tensor::zero_grad(bool set_to_none) {
  TensorImpl* t = impl();
  if (!t->grad) return;
  if (set_to_none) {
    t->grad.reset();
  } else {
    Tensor g(t->grad);
    if (g.requires_grad()) g = g.detach();
    g.zero_();
    t->grad = g.impl_ptr();
  }
}

void Tensor::retain_grad() {
  TensorImpl* t = impl();
  if (!t->grad_fn) {
    if (!t->requires_grad)
      fail<AutogradError>("retain_grad: tensor of shape {} does not require grad", t->shape);
    return;  // leaves keep their gradient anyway
  }
  if (t->retains_grad) return;
  t->retains_grad = true;
  t->grad_fn->retained.emplace_back(t->output_nr, impl_);
}

Tensor Tensor::detach() const {
  auto t = std::make_shared<TensorImpl>();
  const TensorImpl& s = *impl();
  t->storage = s.storage;
  t->shape = s.shape;
  t->strides = s.strides;
  t->offset = s.offset;
  t->dtype = s.dtype;
  t->is_view = true;
  return Tensor(std::move(t));
}

void Tensor::set_data(const Tensor& src) {
  TensorImpl* t = impl();
  if (t->grad_fn)
    fail<AutogradError>("set_data: tensor of shape {} is the output of {}; only leaves can be reset",
                        t->shape, t->grad_fn->name());
  const TensorImpl& s = *src.impl();
  if (t->requires_grad && !is_floating(s.dtype))
    fail<DtypeError>("set_data: a tensor that requires grad cannot take {} data",
                     dtype_name(s.dtype));
  t->storage = s.storage;
  t->shape = s.shape;
  t->strides = s.strides;
  t->offset = s.offset;
  t->dtype = s.dtype;
  if (t->grad && (!(Tensor(t->grad).shape() == s.shape) || t->grad->dtype != s.dtype))
    t->grad.reset();
}

void Tensor::backward(const Tensor& grad, bool retain_graph, bool create_graph) const {
  ag::backward({*this}, grad.defined() ? TensorList{grad} : TensorList{}, retain_graph,
               create_graph);
}

// ---------------------------------------------------------------------------------------------
// conversion and copies

namespace {
// dst[i] = src[i] with conversion; shapes broadcast src -> dst.
void copy_into(const Tensor& dst, const Tensor& src) {
  dispatch_all(dst.dtype(), "copy", [&]<class D>() {
    dispatch_all(src.dtype(), "copy", [&]<class S>() {
      kernels::map<D, S>(dst, [](S x) { return static_cast<D>(x); }, src);
    });
  });
}
}  // namespace

Tensor Tensor::to(Dtype dtype) const {
  if (dtype == this->dtype()) return *this;
  Tensor out = empty(shape(), dtype);
  copy_into(out, *this);
  if (is_floating(dtype) && needs_derivatives({this})) {
    struct None {};
    Dtype src = this->dtype();
    record(
        op("to", &Tensor::to, *this, dtype), out, None{},
        rules::linear([src](const None&, const Tensor& g) -> TensorList { return {g.to(src)}; }));
  }
  return out;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype());
  copy_into(out, *this);
  if (needs_derivatives({this})) {
    struct None {};
    record(op("clone", &Tensor::clone, *this), out, None{},
           rules::linear([](const None&, const Tensor& g) -> TensorList { return {g}; }));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// in-place ops

namespace {

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
  for (const Tensor* o : others) {
    if (!o->defined()) continue;
    Shape b = broadcast_shapes(s->shape, o->shape(), op);
    if (!(b == s->shape))
      fail<ShapeError>("{}: cannot broadcast shape {} into the shape {} of the tensor modified",
                       op, o->shape(), s->shape);
  }
  bool record = is_grad_enabled() && is_floating(s->dtype) && (s->requires_grad || [&] {
                  for (const Tensor* o : others)
                    if (o->defined() && o->requires_grad()) return true;
                  return false;
                }());
  bool dual =
      fwd::detail::propagating() && is_floating(s->dtype) && (fwd::detail::is_dual(self) || [&] {
        for (const Tensor* o : others)
          if (o->defined() && fwd::detail::is_dual(*o)) return true;
        return false;
      }());
  if (record) {
    if (!s->grad_fn && s->requires_grad)
      fail<AutogradError>(
          "{}: a leaf tensor of shape {} that requires grad cannot be modified in place while "
          "recording; do it under NoGradGuard",
          op, s->shape);
    if (s->is_view)
      fail<AutogradError>(
          "{}: in-place modification of a view (shape {}) is not supported while recording; "
          "clone() it first",
          op, s->shape);
  }
  if (!record && !dual) {
    kernel();
    ++s->storage->version;
    return self;
  }
  Tensor r;
  {
    std::optional<NoGradGuard> ng;
    if (!record) ng.emplace();  // forward mode only: nothing to record
    r = out_of_place(self.clone());
  }
  Tensor tangent = fwd::detail::tangent_of(r);
  {
    NoGradGuard ng;
    copy_into(self, r.detach());
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
      copy_into(old, tangent);
      ++old.impl()->storage->version;
    } else {
      fwd::detail::set_tangent(self, tangent.defined() ? tangent : zeros_like(self));
    }
  }
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
        kernels::map<T, T, T>(self, [](T x, T y) { return x + y; }, self, o);
      else
        kernels::map<T, T, T>(self, [a](T x, T y) { return x + a * y; }, self, o);
    });
  });
}
}  // namespace

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  return add_scaled_(*this, "add_", other, alpha);
}

Tensor& Tensor::add_(double value) {
  return inplace(*this, "add_", {}, [&](const Tensor& v) { return add(v, value); }, [&] {
    dispatch_floating(dtype(), "add_", [&]<class T>() {
      T v = static_cast<T>(value);
      kernels::map<T, T>(*this, [v](T x) { return x + v; }, *this);
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
      kernels::map<T, T, T>(*this, [](T x, T y) { return x * y; }, *this, o);
    });
  });
}

Tensor& Tensor::mul_(double value) {
  return inplace(*this, "mul_", {}, [&](const Tensor& v) { return mul(v, value); }, [&] {
    dispatch_floating(dtype(), "mul_", [&]<class T>() {
      T v = static_cast<T>(value);
      kernels::map<T, T>(*this, [v](T x) { return x * v; }, *this);
    });
  });
}

Tensor& Tensor::div_(const Tensor& other) {
  auto out_of_place = [&](const Tensor& v) { return div(v, or_clone(other, *this, v)); };
  return inplace(*this, "div_", {&other}, out_of_place, [&] {
    Tensor o = as_dtype(other, dtype());
    dispatch_floating(dtype(), "div_", [&]<class T>() {
      kernels::map<T, T, T>(*this, [](T x, T y) { return x / y; }, *this, o);
    });
  });
}

Tensor& Tensor::div_(double value) {
  // Recorded: a true division by a 0-d tensor of self's dtype, as the kernel below divides.
  auto out_of_place = [&](const Tensor& v) { return div(v, scalar_tensor(value, v.dtype())); };
  return inplace(*this, "div_", {}, out_of_place, [&] {
    dispatch_floating(dtype(), "div_", [&]<class T>() {
      T v = static_cast<T>(value);
      kernels::map<T, T>(*this, [v](T x) { return x / v; }, *this);
    });
  });
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::fill_(double value) {
  return inplace(*this, "fill_", {}, [&](const Tensor& v) { return full_like(v, value); }, [&] {
    dispatch_all(dtype(), "fill_", [&]<class T>() {
      T v = static_cast<T>(value);
      kernels::map<T>(*this, [v]() { return v; });
    });
  });
}

Tensor& Tensor::copy_(const Tensor& src) {
  auto out_of_place = [&](const Tensor&) { return ag::expand(src.to(dtype()), shape()).clone(); };
  return inplace(*this, "copy_", {&src}, out_of_place, [&] { copy_into(*this, src); });
}

Tensor& Tensor::clamp_(double lo, double hi) {
  return inplace(*this, "clamp_", {}, [&](const Tensor& v) { return clamp(v, lo, hi); }, [&] {
    dispatch_floating(dtype(), "clamp_", [&]<class T>() {
      T l = static_cast<T>(lo), h = static_cast<T>(hi);
      kernels::map<T, T>(*this, [l, h](T x) { return x < l ? l : (x > h ? h : x); }, *this);
    });
  });
}

Tensor& Tensor::sqrt_() {
  return inplace(*this, "sqrt_", {}, [&](const Tensor& v) { return ag::sqrt(v); }, [&] {
    dispatch_floating(dtype(), "sqrt_", [&]<class T>() {
      kernels::map<T, T>(*this, [](T x) { return std::sqrt(x); }, *this);
    });
  });
}

Tensor& Tensor::addcmul_(const Tensor& a, const Tensor& b, double value) {
  auto out_of_place = [&](const Tensor& v) {
    return add(v, mul(mul(or_clone(a, *this, v), or_clone(b, *this, v)), value));
  };
  return inplace(*this, "addcmul_", {&a, &b}, out_of_place,
                 [&] {
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
  return inplace(*this, "addcdiv_", {&a, &b}, out_of_place,
                 [&] {
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
  return inplace(*this, "lerp_", {&end}, out_of_place,
                 [&] {
                   Tensor e = as_dtype(end, dtype());
                   dispatch_floating(dtype(), "lerp_", [&]<class T>() {
                     T w = static_cast<T>(weight);
                     kernels::map<T, T, T>(*this, [w](T s, T x) { return s + w * (x - s); },
                                           *this, e);
                   });
                 });
}

// ---------------------------------------------------------------------------------------------
// member sugar

Tensor Tensor::sum() const { return ag::sum(*this); }
Tensor Tensor::sum(const std::vector<int64_t>& axes, bool keepdim) const {
  return ag::sum(*this, axes, keepdim);
}
Tensor Tensor::mean() const { return ag::mean(*this); }
Tensor Tensor::mean(const std::vector<int64_t>& axes, bool keepdim) const {
  return ag::mean(*this, axes, keepdim);
}
Tensor Tensor::reshape(const Shape& s) const { return ag::reshape(*this, s); }
Tensor Tensor::view(const Shape& s) const { return ag::view(*this, s); }
Tensor Tensor::flatten(int64_t start, int64_t end) const { return ag::flatten(*this, start, end); }
Tensor Tensor::transpose(int64_t a, int64_t b) const { return ag::transpose(*this, a, b); }
Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  return ag::permute(*this, order);
}
Tensor Tensor::t() const {
  if (dim() < 2) return *this;
  return ag::transpose(*this, -2, -1);
}
Tensor Tensor::squeeze(int64_t axis) const { return ag::squeeze(*this, axis); }
Tensor Tensor::unsqueeze(int64_t axis) const { return ag::unsqueeze(*this, axis); }
Tensor Tensor::expand(const Shape& s) const { return ag::expand(*this, s); }
Tensor Tensor::slice(int64_t axis, int64_t start, int64_t stop, int64_t step) const {
  return ag::slice(*this, axis, start, stop, step);
}
Tensor Tensor::select(int64_t axis, int64_t index) const { return ag::select(*this, axis, index); }
Tensor Tensor::matmul(const Tensor& other) const { return ag::matmul(*this, other); }
Tensor Tensor::pow(double e) const { return ag::pow(*this, e); }
Tensor Tensor::exp() const { return ag::exp(*this); }
Tensor Tensor::log() const { return ag::log(*this); }
Tensor Tensor::sqrt() const { return ag::sqrt(*this); }
Tensor Tensor::abs() const { return ag::abs(*this); }
Tensor Tensor::tanh() const { return ag::tanh(*this); }
Tensor Tensor::sigmoid() const { return ag::sigmoid(*this); }
Tensor Tensor::relu() const { return ag::relu(*this); }

// ---------------------------------------------------------------------------------------------
// factories

Tensor full(const Shape& shape, double value, Dtype dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  NoGradGuard ng;
  t.fill_(value);
  t.impl()->storage->version = 0;
  return t;
}
Tensor zeros(const Shape& shape, Dtype dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, Dtype dtype) { return full(shape, 1.0, dtype); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.dtype()); }
Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype()); }
Tensor scalar_tensor(double value, Dtype dtype) { return full(Shape{}, value, dtype); }

Tensor arange(double start, double stop, double step, Dtype dtype) {
  if (step == 0) fail<ValueError>("arange: step must be non-zero");
  double span = (stop - start) / step;
  if (!std::isfinite(span) || span > 9.2e18)
    fail<ValueError>("arange: [{}, {}) in steps of {} has too many elements ({})", start, stop,
                     step, span);
  int64_t n = span > 0 ? static_cast<int64_t>(std::ceil(span - 1e-12)) : 0;
  Tensor t = Tensor::empty(Shape{n}, dtype);
  dispatch_all(dtype, "arange", [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return t;
}
Tensor arange(int64_t n, Dtype dtype) { return arange(0.0, static_cast<double>(n), 1.0, dtype); }

Tensor linspace(double start, double stop, int64_t steps, Dtype dtype) {
  if (steps < 0) fail<ValueError>("linspace: steps must be non-negative, got {}", steps);
  Tensor t = Tensor::empty(Shape{steps}, dtype);
  dispatch_floating(dtype, "linspace", [&]<class T>() {
    T* p = t.data<T>();
    double h = steps > 1 ? (stop - start) / static_cast<double>(steps - 1) : 0.0;
    for (int64_t i = 0; i < steps; ++i)
      p[i] = static_cast<T>(i == steps - 1 && steps > 1 ? stop : start + h * static_cast<double>(i));
  });
  return t;
}

Tensor eye(int64_t n, Dtype dtype) {
  if (n < 0) fail<ValueError>("eye: size must be non-negative, got {}", n);
  Tensor t = zeros(Shape{n, n}, dtype);
  dispatch_all(dtype, "eye", [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i * n + i] = static_cast<T>(1);
  });
  return t;
}

}  // namespace ag
