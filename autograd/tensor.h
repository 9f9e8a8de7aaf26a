// Tensor: an N-dimensional, row-major, strided view of a Storage, plus the autograd metadata that
// ties it into the tape (requires_grad, grad, grad_fn).
//
// Views (slice, view, transpose, expand... and the pieces of split) share their base's Storage and
// so its version counter: an in-place write through any of them is seen by every tensor saved for
// a backward. A view taken before an in-place op that records new history on its base keeps its
// old history; using it in a recorded op (or as a backward root) raises AutogradError rather than
// computing a wrong gradient (TensorImpl::stale_view). In-place ops on a view while recording are
// refused. detach() shares the storage but carries no history, so neither rule applies to it.
//
// A Tensor is a cheap handle (one shared pointer): copies alias the same tensor, like Python names
// for a torch.Tensor. Ops are free functions in autograd/ops/*.h; the most used ones are also
// members.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "autograd/dtype.h"
#include "autograd/error.h"
#include "autograd/shape.h"
#include "autograd/storage.h"

namespace ag {

class Node;
class Tensor;

// The data behind a Tensor handle. Semi-internal: ops and the engine use it, users need not.
struct TensorImpl {
  // The buffer holding the elements (shared by views).
  std::shared_ptr<Storage> storage;
  // Size of each axis.
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  // Element type.
  Dtype dtype = Dtype::float32;
  // Whether backward computes a gradient for this tensor.
  bool requires_grad = false;
  // Non-leaf whose .grad backward also fills (retain_grad()).
  bool retains_grad = false;
  bool is_view = false;    // shares storage with another tensor (view op or detach)
  uint32_t output_nr = 0;  // which output of grad_fn this tensor is
  // Views made by view ops: storage->history when the view (or the view it was taken from) was
  // made. A recorded in-place op on the base bumps storage->history, after which this view's
  // grad_fn describes old values; using it in a recorded op then raises AutogradError.
  // kUntrackedView for detach() and the views taken from it (they carry no history).
  static constexpr uint32_t kUntrackedView = UINT32_MAX;
  // The history stamp described above (kUntrackedView when not tracked).
  uint32_t view_history = kUntrackedView;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  // The accumulated gradient (null until backward reaches it).
  std::shared_ptr<TensorImpl> grad;
  std::weak_ptr<Node> grad_accumulator;  // leaves: the node that accumulates into .grad
  // Forward mode (autograd/forward.h): the tangent of this tensor at forward-AD level
  // `tangent_level`; ignored once that level has ended. Null when the tensor is not a dual.
  std::shared_ptr<TensorImpl> tangent;
  // The forward-AD level the tangent belongs to (0: none).
  uint64_t tangent_level = 0;

  // Counted in memory_stats().live_tensors.
  TensorImpl();
  // Copies every field (a new live TensorImpl for the counters).
  TensorImpl(const TensorImpl& other);
  // Copies every field; the counters are unchanged (no object is created).
  TensorImpl& operator=(const TensorImpl&) = default;
  ~TensorImpl();
  // Makes this describe src's elements: src's storage and dtype, and the given geometry (shape,
  // strides, offset). The autograd fields are left as they are. The one place that copies the data
  // fields (detach, views, set_data and saved outputs use it).
  void share_data(const TensorImpl& src, const Shape& shape_, const Shape& strides_,
                  int64_t offset_) {
    storage = src.storage;
    shape = shape_;
    strides = strides_;
    offset = offset_;
    dtype = src.dtype;
  }
  // The same with src's own geometry: the same elements as src.
  void share_data(const TensorImpl& src) { share_data(src, src.shape, src.strides, src.offset); }
  // Whether this is a view whose history was overtaken by a recorded in-place op on its base.
  bool stale_view() const {
    return is_view && view_history != kUntrackedView && view_history != storage->history;
  }
};

// A handle to a tensor: an N-dimensional array that can record the ops applied to it on
// the tape. Copying the handle aliases the same tensor; clone() copies the data.
class Tensor {
 public:
  Tensor() = default;
  // Wraps existing tensor state (used by ops and the engine).
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- construction (see also the factories below) ----
  // A new, uninitialised contiguous tensor. ShapeError for a negative size; MemoryError (naming
  // the shape and the bytes) if the element or byte count overflows 64 bits or the system refuses
  // the memory; the factories below (zeros, ones, full...) inherit this.
  static Tensor empty(const Shape& shape, Dtype dtype = float32);
  // A 0-d float32 tensor holding `scalar`. Explicit: a double never silently becomes a tensor
  // (f(3.0) does not compile for f(const Tensor&)); write Tensor(3.0) or scalar_tensor(3.0, dtype).
  // Arithmetic keeps its scalar forms instead: x * 2.0, 2.0 - x, x / 3.0, x < 0.5 take the double
  // as it is (autograd/ops/elementwise.h), without making a tensor of it.
  explicit Tensor(double scalar);
  // Nested initializer lists: Tensor({{1, 2}, {3, 4}}) is a 2x2 float32 tensor.
  // A 1-d float32 tensor: Tensor({1, 2, 3}).
  Tensor(std::initializer_list<double> values);
  // A 2-d float32 tensor, one inner list per row (rows must have the same length).
  Tensor(std::initializer_list<std::initializer_list<double>> values);
  // A 3-d float32 tensor.
  Tensor(std::initializer_list<std::initializer_list<std::initializer_list<double>>> values);
  // From a flat vector and a shape (numel must match).
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  template <class T>
  // A 1-d tensor holding a copy of `values` (dtype from T).
  static Tensor from_vector(const std::vector<T>& values) {
    return from_vector(values, Shape{static_cast<int64_t>(values.size())});
  }

  // ---- metadata ----
  // False for a default-constructed handle (an "undefined" tensor, e.g. a missing gradient).
  bool defined() const { return impl_ != nullptr; }
  // Size of each axis.
  const Shape& shape() const { return impl()->shape; }
  // Step in elements between neighbours along each axis (0 along a broadcast axis).
  const Shape& strides() const { return impl()->strides; }
  // Position of element [0,...,0] in the storage, in elements.
  int64_t offset() const { return impl()->offset; }
  // Number of axes (0 for a scalar).
  int64_t dim() const { return shape().size(); }
  // Size along an axis (negative counts from the end).
  int64_t size(int64_t axis) const;
  // Number of elements (the product of the sizes).
  int64_t numel() const { return shape().numel(); }
  // Element type.
  Dtype dtype() const { return impl()->dtype; }
  // Whether the elements lie in row-major order without gaps.
  bool is_contiguous() const;
  // The storage version counter (bumped by in-place writes).
  uint32_t version() const { return impl()->storage->version; }
  // The state behind the handle; raises ValueError if the tensor is undefined.
  TensorImpl* impl() const;
  // The shared state itself (null if undefined).
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  // Whether both handles refer to the same tensor (not: equal values).
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

  // ---- data access ----
  // Typed pointer to element [0,...,0]; T must match dtype().
  template <class T>
  T* data() const;
  // The single value of a one-element tensor, as double (or T).
  double item() const;
  template <class T>
  // The single value of a one-element tensor, converted to T.
  T item() const {
    return static_cast<T>(item());
  }
  // Element at a full index (negative indices count from the end).
  double at(std::initializer_list<int64_t> index) const;
  // Copies of all elements in row-major order.
  template <class T>
  std::vector<T> to_vector() const;

  // ---- autograd ----
  // Whether backward computes a gradient for this tensor (set on leaves, inherited by results).
  bool requires_grad() const { return impl()->requires_grad; }
  // Marks a leaf as a parameter whose gradient backward should compute. Returns *this.
  Tensor& requires_grad_(bool flag = true);
  // Like requires_grad_, but returns a handle instead of a reference (for expressions on
  // temporaries).
  Tensor set_requires_grad(bool flag = true) {
    requires_grad_(flag);
    return *this;
  }
  // The accumulated gradient (undefined until a backward reaches this tensor).
  Tensor grad() const;
  // Replaces .grad by `g` (same shape, else ShapeError); an undefined `g` clears it.
  void set_grad(const Tensor& g);
  // Sets .grad to zeros (set_to_none = false) or drops it (default, as PyTorch's optimizers do).
  void zero_grad(bool set_to_none = true);
  // The tape node that produced this tensor (null for a leaf).
  const std::shared_ptr<Node>& grad_fn() const { return impl()->grad_fn; }
  // True for a tensor no recorded op produced: created by the user, or computed without grad.
  bool is_leaf() const { return impl()->grad_fn == nullptr; }
  // Asks backward to also fill .grad of this non-leaf tensor.
  void retain_grad();
  // Whether retain_grad() was called.
  bool retains_grad() const { return impl()->retains_grad; }
  // Same data, cut from the graph (shares storage).
  Tensor detach() const;
  // Whether the two tensors' data live in one storage (views and detach() of each other).
  bool shares_storage(const Tensor& other) const {
    return impl()->storage == other.impl()->storage;
  }
  // An address unique to this tensor while it lives (equal exactly when same()): a key for sets
  // and maps of tensors.
  const void* identity() const { return impl_.get(); }
  // Back-propagates from this tensor. `grad` defaults to 1 for a one-element tensor.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false,
                bool create_graph = false) const;

  // Replaces this tensor's data (storage, shape, dtype) with `src`'s, keeping its identity and
  // autograd flags: every handle to this tensor sees the new data (Module::to, load_state_dict).
  // Leaves only.
  void set_data(const Tensor& src);

  // ---- conversion ----
  Tensor to(Dtype dtype) const;  // differentiable between float32, float64 and bfloat16
  // This tensor if already contiguous, else a row-major copy.
  Tensor contiguous() const;
  // A contiguous copy of the data; differentiable (the gradient passes through).
  Tensor clone() const;

  // ---- common ops as members (the free functions in autograd/ops/ are the reference) ----
  // Sum of all elements (a 0-d tensor).
  Tensor sum() const;
  // Sum over `axes`, kept as size-1 axes when keepdim.
  Tensor sum(const std::vector<int64_t>& axes, bool keepdim = false) const;
  // Mean of all elements.
  Tensor mean() const;
  // Mean over `axes`.
  Tensor mean(const std::vector<int64_t>& axes, bool keepdim = false) const;
  // Same elements in a new shape (one size may be -1): a view if possible, else a copy.
  Tensor reshape(const Shape& shape) const;
  // Like reshape, but never copies (ShapeError if the strides do not allow it).
  Tensor view(const Shape& shape) const;
  // Merges axes start..end into one.
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  // Swaps axes a and b (a view).
  Tensor transpose(int64_t a, int64_t b) const;
  // Reorders the axes (a view): axis i of the result is axis order[i].
  Tensor permute(const std::vector<int64_t>& order) const;
  Tensor t() const;  // transpose of the last two axes
  // Removes a size-1 axis.
  Tensor squeeze(int64_t axis) const;
  // Inserts a size-1 axis at position `axis`.
  Tensor unsqueeze(int64_t axis) const;
  // Broadcasts to a larger shape without copying (stride 0); -1 keeps a size.
  Tensor expand(const Shape& shape) const;
  // Elements start, start + step, ... before stop along `axis` (a view, like x[start:stop:step]).
  Tensor slice(int64_t axis, int64_t start, int64_t stop, int64_t step = 1) const;
  // The slice at `index` along `axis`, which is removed (a view).
  Tensor select(int64_t axis, int64_t index) const;
  // select(0, index): x[i] is row i.
  Tensor operator[](int64_t index) const { return select(0, index); }
  // Matrix product, as the free function matmul (autograd/ops/linalg.h).
  Tensor matmul(const Tensor& other) const;
  // Each element raised to `exponent`.
  Tensor pow(double exponent) const;
  // Elementwise e^x.
  Tensor exp() const;
  // Elementwise natural logarithm.
  Tensor log() const;
  // Elementwise square root.
  Tensor sqrt() const;
  // Elementwise absolute value.
  Tensor abs() const;
  // Elementwise hyperbolic tangent.
  Tensor tanh() const;
  // Elementwise logistic function 1 / (1 + e^-x).
  Tensor sigmoid() const;
  // Elementwise max(x, 0).
  Tensor relu() const;

  // ---- in-place ops (bump the version counter; defined in autograd/ops/inplace.cpp) ----
  // self += alpha * other (other broadcast to self's shape).
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  // self += value.
  Tensor& add_(double value);
  // self -= alpha * other.
  Tensor& sub_(const Tensor& other, double alpha = 1.0);
  // self *= other, elementwise.
  Tensor& mul_(const Tensor& other);
  // self *= value.
  Tensor& mul_(double value);
  // self /= other, elementwise.
  Tensor& div_(const Tensor& other);
  // self /= value (a true division, recorded or not: the same bits either way).
  Tensor& div_(double value);
  // Sets every element to 0.
  Tensor& zero_();
  // Sets every element to `value`.
  Tensor& fill_(double value);
  // Copies src's values into this tensor (broadcast and converted to its dtype).
  Tensor& copy_(const Tensor& src);
  // Limits every element to [lo, hi].
  Tensor& clamp_(double lo, double hi);
  // Replaces every element by its square root.
  Tensor& sqrt_();
  // self += value * a * b, elementwise (a and b broadcast to self's shape).
  Tensor& addcmul_(const Tensor& a, const Tensor& b, double value = 1.0);
  // self += value * a / b, elementwise (a and b broadcast to self's shape).
  Tensor& addcdiv_(const Tensor& a, const Tensor& b, double value = 1.0);
  // self += weight * (end - self)
  Tensor& lerp_(const Tensor& end, double weight);

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// A list of tensors: op inputs and outputs, gradients.
using TensorList = std::vector<Tensor>;

// ---- factories (float32 unless a dtype is given) ----
// A tensor of zeros.
Tensor zeros(const Shape& shape, Dtype dtype = float32);
// A tensor of ones.
Tensor ones(const Shape& shape, Dtype dtype = float32);
// A tensor with every element equal to `value`.
Tensor full(const Shape& shape, double value, Dtype dtype = float32);
// Zeros of t's shape and dtype.
Tensor zeros_like(const Tensor& t);
// Ones of t's shape and dtype.
Tensor ones_like(const Tensor& t);
// `value` in t's shape and dtype.
Tensor full_like(const Tensor& t, double value);
// An uninitialised tensor of t's shape and dtype.
Tensor empty_like(const Tensor& t);
// start, start+step, ... < stop
Tensor arange(double start, double stop, double step = 1.0, Dtype dtype = float32);
// 0, 1, ..., n - 1.
Tensor arange(int64_t n, Dtype dtype = float32);
// `steps` evenly spaced values from start to stop, both included (floating dtypes).
Tensor linspace(double start, double stop, int64_t steps, Dtype dtype = float32);
// The n x n identity matrix.
Tensor eye(int64_t n, Dtype dtype = float32);
// A 0-d tensor holding `value`.
Tensor scalar_tensor(double value, Dtype dtype = float32);

// ---- implementation details ----
template <class T>
T* Tensor::data() const {
  if (dtype_of<std::remove_const_t<T>>::value != dtype())
    fail<DtypeError>("data<{}>(): tensor has dtype {}",
                     dtype_name(dtype_of<std::remove_const_t<T>>::value), dtype_name(dtype()));
  return static_cast<T*>(impl()->storage->data) + impl()->offset;
}

}  // namespace ag
