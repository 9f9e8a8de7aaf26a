#include "autograd/tensor.h"

#include <cstring>

#include "autograd/engine.h"
#include "autograd/forward.h"
#include "autograd/kernels/bf16.h"
#include "autograd/kernels/copy.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/node.h"
#include "autograd/object_pool.h"
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
      fail<ShapeError>("{}: shapes {} and {} cannot be broadcast (axis {}: {} vs {})", op, a, b, i,
                       x, y);
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
  auto impl = detail::make_pooled<TensorImpl>();
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

Tensor::Tensor(std::initializer_list<std::initializer_list<std::initializer_list<double>>> values) {
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

int64_t Tensor::size(int64_t axis) const { return shape()[normalize_axis(axis, dim(), "size")]; }

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
    fail<ShapeError>("set_grad: gradient of shape {} for a tensor of shape {}", g.shape(), shape());
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
  t->grad_fn->tape.retained.emplace_back(t->output_nr, impl_);
}

Tensor Tensor::detach() const {
  auto t = detail::make_pooled<TensorImpl>();
  t->share_data(*impl());
  t->is_view = true;
  return Tensor(std::move(t));
}

void Tensor::set_data(const Tensor& src) {
  TensorImpl* t = impl();
  if (t->grad_fn)
    fail<AutogradError>(
        "set_data: tensor of shape {} is the output of {}; only leaves can be reset", t->shape,
        t->grad_fn->name());
  const TensorImpl& s = *src.impl();
  if (t->requires_grad && !is_floating(s.dtype))
    fail<DtypeError>("set_data: a tensor that requires grad cannot take {} data",
                     dtype_name(s.dtype));
  t->share_data(s);
  if (t->grad && (!(Tensor(t->grad).shape() == s.shape) || t->grad->dtype != s.dtype))
    t->grad.reset();
}

void Tensor::backward(const Tensor& grad, bool retain_graph, bool create_graph) const {
  ag::backward({*this}, grad.defined() ? TensorList{grad} : TensorList{}, retain_graph,
               create_graph);
}

// ---------------------------------------------------------------------------------------------
// conversion and copies

Tensor Tensor::to(Dtype dtype) const {
  if (dtype == this->dtype()) return *this;
  Tensor out = empty(shape(), dtype);
  kernels::copy_into(out, *this);
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
  kernels::copy_into(out, *this);
  if (needs_derivatives({this})) {
    struct None {};
    record(op("clone", &Tensor::clone, *this), out, None{},
           rules::linear([](const None&, const Tensor& g) -> TensorList { return {g}; }));
  }
  return out;
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
  if (dtype == bfloat16) return kernels::cast(linspace(start, stop, steps, float32), bfloat16);
  Tensor t = Tensor::empty(Shape{steps}, dtype);
  dispatch_floating(dtype, "linspace", [&]<class T>() {
    T* p = t.data<T>();
    double h = steps > 1 ? (stop - start) / static_cast<double>(steps - 1) : 0.0;
    for (int64_t i = 0; i < steps; ++i)
      p[i] =
          static_cast<T>(i == steps - 1 && steps > 1 ? stop : start + h * static_cast<double>(i));
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
