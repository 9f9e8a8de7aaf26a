#include "autograd/ops/shape.h"

#include <algorithm>
#include <numeric>

#include "autograd/engine.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/object_pool.h"
#include "autograd/op.h"
#include "autograd/ops/elementwise.h"

namespace ag {

namespace {

// A tensor sharing x's storage with a new shape, strides and offset.
Tensor make_view(const Tensor& x, const Shape& shape, const Shape& strides, int64_t offset) {
  auto t = detail::make_pooled<TensorImpl>();
  const TensorImpl& s = *x.impl();
  t->share_data(s, shape, strides, offset);
  t->is_view = true;
  // A view of a view keeps the stamp of the first (stale history stays stale; detach()'s untracked
  // views stay untracked); a view of a plain tensor takes the buffer's current history count.
  t->view_history = s.is_view ? s.view_history : s.storage->history;
  return Tensor(std::move(t));
}

// Resolves a single -1 in a requested shape; ShapeError if the element counts differ.
Shape infer_shape(const char* op, const Shape& from, const Shape& req) {
  Shape s = req;
  // The product of the non-zero sizes must fit, as for every tensor's shape (checked_numel).
  int64_t nonzero = 1, infer = -1;
  bool zero = false;
  for (int64_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) fail<ShapeError>("{}: only one size may be -1 in {}", op, req);
      infer = i;
    } else if (s[i] < 0) {
      fail<ShapeError>("{}: invalid size {} in {}", op, s[i], req);
    } else if (s[i] == 0) {
      zero = true;
    } else if (__builtin_mul_overflow(nonzero, s[i], &nonzero)) {
      fail<ShapeError>("{}: cannot reshape {} ({} elements) into {}: the sizes' product overflows",
                       op, from, from.numel(), req);
    }
  }
  const int64_t known = zero ? 0 : nonzero;
  if (infer >= 0) {
    if (known == 0 || from.numel() % known != 0)
      fail<ShapeError>("{}: cannot reshape {} ({} elements) into {}", op, from, from.numel(), req);
    s[infer] = from.numel() / known;
  }
  if (s.numel() != from.numel())
    fail<ShapeError>("{}: cannot reshape {} ({} elements) into {} ({} elements)", op, from,
                     from.numel(), req, s.numel());
  return s;
}

struct None {};

// Ops that work along an existing axis have nothing to work on in a 0-d tensor.
void require_axes(const char* op, const Tensor& x) {
  if (x.dim() == 0) fail<ShapeError>("{}: needs a tensor with at least one axis, got shape []", op);
}

}  // namespace

namespace {

// Strides that let a tensor of (shape, strides) be read as `target` without copying, if any exist.
// Walks the old axes from the innermost, in runs that are contiguous with each other; each run must
// be covered exactly by a run of new axes.
bool view_strides(const Shape& shape, const Shape& strides, const Shape& target, Shape& out) {
  out.resize(target.size());
  if (shape.numel() == 0 || shape.size() == 0) {
    out = contiguous_strides(target);
    return true;
  }
  int64_t v = target.size() - 1;
  int64_t base = strides[shape.size() - 1];
  int64_t run = 1, covered = 1;
  for (int64_t d = shape.size() - 1; d >= 0; --d) {
    run *= shape[d];
    bool run_ends = d == 0 || (shape[d - 1] != 1 && strides[d - 1] != run * base);
    if (!run_ends) continue;
    while (v >= 0 && (covered < run || target[v] == 1)) {
      out[v] = covered * base;
      covered *= target[v];
      --v;
    }
    if (covered != run) return false;
    if (d > 0) {
      base = strides[d - 1];
      run = 1;
      covered = 1;
    }
  }
  return v == -1;
}

}  // namespace

Tensor view(const Tensor& x, const Shape& shape) {
  Shape s = infer_shape("view", x.shape(), shape);
  Shape st;
  if (!view_strides(x.shape(), x.strides(), s, st))
    fail<ShapeError>(
        "view: a tensor of shape {} with strides {} cannot be viewed as {} without copying; use "
        "reshape",
        x.shape(), x.strides(), s);
  Tensor out = make_view(x, s, st, x.offset());
  if (needs_derivatives({&x})) {
    Shape in = x.shape();
    // The tangent is reshaped rather than viewed: its strides need not allow the view.
    record(op("view", view, x, s), out, None{},
           Rules{.backward = [in](const None&, const Tensor& g) -> TensorList {
                   return {reshape(g, in)};
                 },
                 .jvp = [s](const None&, const TensorList& t) { return reshape(t[0], s); }});
  }
  return out;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape s = infer_shape("reshape", x.shape(), shape);
  if (s == x.shape()) return x;
  Shape st;
  if (view_strides(x.shape(), x.strides(), s, st)) return view(x, s);
  return view(x.contiguous(), s);
}

Tensor flatten(const Tensor& x, int64_t start, int64_t end) {
  start = normalize_axis(start, x.dim(), "flatten");
  end = normalize_axis(end, x.dim(), "flatten");
  if (x.dim() == 0) return reshape(x, Shape{1});
  if (start > end) fail<IndexError>("flatten: start axis {} is after end axis {}", start, end);
  Shape s;
  int64_t merged = 1;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < start || i > end) {
      s.push_back(x.shape()[i]);
    } else {
      merged *= x.shape()[i];
      if (i == end) s.push_back(merged);
    }
  }
  return reshape(x, s);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& order) {
  int64_t n = x.dim();
  if (static_cast<int64_t>(order.size()) != n)
    fail<ShapeError>("permute: {} axes given for a tensor of shape {}", order.size(), x.shape());
  std::vector<int64_t> ax(n), inverse(n, -1);
  for (int64_t i = 0; i < n; ++i) {
    ax[i] = normalize_axis(order[i], n, "permute");
    if (inverse[ax[i]] >= 0) fail<IndexError>("permute: axis {} repeated", ax[i]);
    inverse[ax[i]] = i;
  }
  Shape s, st;
  for (int64_t i = 0; i < n; ++i) {
    s.push_back(x.shape()[ax[i]]);
    st.push_back(x.strides()[ax[i]]);
  }
  Tensor out = make_view(x, s, st, x.offset());
  if (needs_derivatives({&x}))
    record(op("permute", permute, x, ax), out, None{},
           rules::linear([inverse](const None&, const Tensor& g) -> TensorList {
             return {permute(g, inverse)};
           }));
  return out;
}

Tensor transpose(const Tensor& x, int64_t a, int64_t b) {
  int64_t n = x.dim();
  a = normalize_axis(a, n, "transpose");
  b = normalize_axis(b, n, "transpose");
  if (n == 0) return x;
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[a], order[b]);
  return permute(x, order);
}

Tensor squeeze(const Tensor& x, int64_t axis) {
  axis = normalize_axis(axis, x.dim(), "squeeze");
  if (x.dim() == 0) return x;
  if (x.shape()[axis] != 1) return x;
  Shape s = x.shape();
  s.erase(axis);
  return reshape(x, s);
}

Tensor squeeze(const Tensor& x) {
  Shape s;
  for (int64_t d : x.shape())
    if (d != 1) s.push_back(d);
  return reshape(x, s);
}

Tensor unsqueeze(const Tensor& x, int64_t axis) {
  axis = normalize_axis(axis, x.dim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(axis, 1);
  if (x.is_contiguous()) return reshape(x, s);
  // Keep it a view for strided inputs: the new axis gets any stride.
  Shape st = x.strides();
  st.insert(axis, 1);
  Tensor out = make_view(x, s, st, x.offset());
  if (needs_derivatives({&x}))
    record(op("unsqueeze", unsqueeze, x, axis), out, None{},
           rules::linear(
               [axis](const None&, const Tensor& g) -> TensorList { return {squeeze(g, axis)}; }));
  return out;
}

Tensor expand(const Tensor& x, const Shape& shape) {
  int64_t n = shape.size(), lead = n - x.dim();
  if (lead < 0)
    fail<ShapeError>("expand: cannot expand shape {} to fewer axes {}", x.shape(), shape);
  Shape s, st;
  s.resize(n);
  st.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t j = i - lead;
    int64_t want = shape[i];
    if (j < 0) {
      if (want < 0) fail<ShapeError>("expand: -1 not allowed for a new leading axis in {}", shape);
      s[i] = want;
      st[i] = 0;
    } else {
      int64_t have = x.shape()[j];
      if (want == -1) want = have;
      if (have != want && have != 1)
        fail<ShapeError>("expand: cannot expand shape {} to {} (axis {}: {} vs {})", x.shape(),
                         shape, i, have, want);
      s[i] = want;
      st[i] = have == want ? x.strides()[j] : 0;
    }
  }
  checked_numel(s, "expand");  // negative sizes and overflowing products
  if (s == x.shape()) return x;
  Tensor out = make_view(x, s, st, x.offset());
  // The engine sums the gradient back to the input's shape.
  if (needs_derivatives({&x}))
    record(op("expand", expand, x, s), out, None{},
           rules::linear([](const None&, const Tensor& g) -> TensorList { return {g}; }));
  return out;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) { return expand(x, shape); }

Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step) {
  require_axes("slice", x);
  axis = normalize_axis(axis, x.dim(), "slice");
  if (step <= 0) fail<ValueError>("slice: step must be positive, got {}", step);
  int64_t n = x.shape()[axis];
  auto clampi = [n](int64_t v) {
    if (v < 0) v += n;
    return std::clamp<int64_t>(v, 0, n);
  };
  start = clampi(start);
  stop = clampi(stop);
  int64_t len = stop > start ? (stop - start + step - 1) / step : 0;
  Shape s = x.shape(), st = x.strides();
  s[axis] = len;
  st[axis] = x.strides()[axis] * step;
  Tensor out = make_view(x, s, st, x.offset() + start * x.strides()[axis]);
  if (needs_derivatives({&x})) {
    Shape in = x.shape();
    record(op("slice", slice, x, axis, start, stop, step), out, None{},
           rules::linear([in, axis, start, step](const None&, const Tensor& g) -> TensorList {
             return {slice_backward(g, in, axis, start, step)};
           }));
  }
  return out;
}

Tensor slice_backward(const Tensor& g, const Shape& shape, int64_t axis, int64_t start,
                      int64_t step) {
  if (shape.size() == 0 || g.dim() != shape.size())
    fail<ShapeError>("slice_backward: gradient of shape {} does not fit a slice of {}", g.shape(),
                     shape);
  axis = normalize_axis(axis, shape.size(), "slice_backward");
  if (step <= 0) fail<ValueError>("slice_backward: step must be positive, got {}", step);
  Tensor out = zeros(shape, g.dtype());
  {
    NoGradGuard ng;
    fwd::detail::Suspend values_only;
    Tensor region = slice(out, axis, start, start + g.shape()[axis] * step, step);
    if (!(region.shape() == g.shape()))
      fail<ShapeError>("slice_backward: gradient of shape {} does not fit slice {} of {}",
                       g.shape(), region.shape(), shape);
    region.copy_(g);
  }
  out.impl()->storage->version = 0;
  if (needs_derivatives({&g})) {
    int64_t len = g.shape()[axis];
    record(op("slice_backward", slice_backward, g, shape, axis, start, step), out, None{},
           rules::linear([axis, start, step, len](const None&, const Tensor& gg) -> TensorList {
             return {slice(gg, axis, start, start + len * step, step)};
           }));
  }
  return out;
}

Tensor select(const Tensor& x, int64_t axis, int64_t index) {
  require_axes("select", x);
  axis = normalize_axis(axis, x.dim(), "select");
  int64_t n = x.shape()[axis];
  if (index < -n || index >= n)
    fail<IndexError>("select: index {} is out of range for axis {} of size {} (shape {})", index,
                     axis, n, x.shape());
  if (index < 0) index += n;
  return squeeze(slice(x, axis, index, index + 1), axis);
}

Tensor cat(const std::vector<Tensor>& xs, int64_t axis) {
  if (xs.empty()) fail<ValueError>("cat: no tensors given");
  const Tensor& first = xs[0];
  require_axes("cat", first);
  axis = normalize_axis(axis, first.dim(), "cat");
  Shape s = first.shape();
  int64_t total = 0;
  Dtype d = first.dtype();
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    if (t.dim() != first.dim())
      fail<ShapeError>("cat: tensor {} has shape {} but tensor 0 has shape {}", i, t.shape(),
                       first.shape());
    for (int64_t k = 0; k < t.dim(); ++k)
      if (k != axis && t.shape()[k] != s[k])
        fail<ShapeError>("cat: tensor {} has shape {} but tensor 0 has shape {} (axis {} differs)",
                         i, t.shape(), first.shape(), k);
    if (t.dtype() != d)
      fail<DtypeError>("cat: tensor {} has dtype {} but tensor 0 has {}", i, dtype_name(t.dtype()),
                       dtype_name(d));
    total += t.shape()[axis];
  }
  s[axis] = total;
  Tensor out = Tensor::empty(s, d);
  {
    NoGradGuard ng;
    fwd::detail::Suspend values_only;
    int64_t at = 0;
    for (const Tensor& t : xs) {
      int64_t len = t.shape()[axis];
      slice(out, axis, at, at + len).copy_(t);
      at += len;
    }
  }
  out.impl()->storage->version = 0;
  bool derivatives = false;
  for (const Tensor& t : xs) derivatives = derivatives || needs_derivatives({&t});
  if (derivatives) {
    std::vector<int64_t> sizes;
    for (const Tensor& t : xs) sizes.push_back(t.shape()[axis]);
    // d/dx_i = the slice of g where x_i was placed.
    record(op("cat", cat, xs, axis), out, None{},
           rules::linear([axis, sizes](const None&, const Tensor& g) -> TensorList {
             TensorList r;
             int64_t at = 0;
             for (int64_t len : sizes) {
               r.push_back(slice(g, axis, at, at + len));
               at += len;
             }
             return r;
           }));
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t axis) {
  if (xs.empty()) fail<ValueError>("stack: no tensors given");
  axis = normalize_axis(axis, xs[0].dim() + 1, "stack");
  std::vector<Tensor> u;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!(xs[i].shape() == xs[0].shape()))
      fail<ShapeError>("stack: tensor {} has shape {} but tensor 0 has shape {}", i, xs[i].shape(),
                       xs[0].shape());
    if (xs[i].dtype() != xs[0].dtype())
      fail<DtypeError>("stack: tensor {} has dtype {} but tensor 0 has {} (shape {})", i,
                       dtype_name(xs[i].dtype()), dtype_name(xs[0].dtype()), xs[0].shape());
    u.push_back(unsqueeze(xs[i], axis));
  }
  return cat(u, axis);
}

std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t axis) {
  require_axes("split", x);
  axis = normalize_axis(axis, x.dim(), "split");
  if (size <= 0) fail<ValueError>("split: piece size must be positive, got {}", size);
  std::vector<Tensor> r;
  int64_t n = x.shape()[axis];
  const bool derivatives = needs_derivatives({&x});
  {
    NoGradGuard ng;
    fwd::detail::Suspend pieces;  // the pieces' tangents are recorded below, for all at once
    // An empty axis still gives one (empty) piece, as in PyTorch, so cat(split(x)) is x.
    int64_t at = 0;
    do {
      r.push_back(slice(x, axis, at, std::min(n, at + size)));
      at += size;
    } while (at < n);
  }
  // One node for all pieces: their gradients (the engine fills in zeros for a piece that got none)
  // are concatenated back in one copy, instead of each piece scattering into a zero tensor of the
  // whole input's size and the engine summing those.
  if (derivatives)
    record(op("split", split, x, size, axis), r, None{},
           rules::linear([axis](const None&, const TensorList& grads, const Node&) -> TensorList {
             return {cat(grads, axis)};
           }));
  return r;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t axis) {
  require_axes("chunk", x);
  if (chunks <= 0) fail<ValueError>("chunk: number of chunks must be positive, got {}", chunks);
  axis = normalize_axis(axis, x.dim(), "chunk");
  int64_t n = x.shape()[axis];
  return split(x, std::max<int64_t>(1, (n + chunks - 1) / chunks), axis);
}

namespace {
Tensor triangle(const char* op, const Tensor& x, int64_t k, bool lower) {
  if (x.dim() < 2) fail<ShapeError>("{}: needs at least 2 axes, got shape {}", op, x.shape());
  int64_t r = x.shape()[x.dim() - 2], c = x.shape()[x.dim() - 1];
  Tensor mask = Tensor::empty(Shape{r, c}, boolean);
  bool* m = mask.data<bool>();
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) m[i * c + j] = lower ? (j - i <= k) : (j - i >= k);
  // A bool input stays bool: keep the entries inside the triangle.
  if (x.dtype() == boolean) return logical_and(x, mask);
  return where(mask, x, zeros(Shape{}, x.dtype()));
}
}  // namespace

Tensor tril(const Tensor& x, int64_t k) { return triangle("tril", x, k, true); }
Tensor triu(const Tensor& x, int64_t k) { return triangle("triu", x, k, false); }

}  // namespace ag
