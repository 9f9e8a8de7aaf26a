#include "autograd/ops/index.h"

#include <cstring>

#include "autograd/kernels/bf16.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/op.h"
#include "autograd/ops/shape.h"

namespace ag {

namespace {

// x seen as [outer, n, inner] around `axis`.
struct Split3 {
  int64_t outer = 1, n = 1, inner = 1;
};
Split3 split3(const Shape& s, int64_t axis) {
  Split3 r;
  for (int64_t i = 0; i < s.size(); ++i) {
    if (i < axis)
      r.outer *= s[i];
    else if (i == axis)
      r.n = s[i];
    else
      r.inner *= s[i];
  }
  return r;
}

// Contiguous int64 index tensor (the caller's own when it already is one, else a copy), every value
// checked against [0, n). Rules must not capture it: it may be the caller's tensor, which the
// caller can overwrite in place. They save it (SavedIndex), and unpacking raises the usual
// "modified by an in-place operation" error.
Tensor checked_index(const char* op, const Tensor& index, int64_t n, int64_t axis,
                     const Shape& xshape) {
  if (index.dtype() != int64)
    fail<DtypeError>("{}: index must be an int64 tensor, got {}", op, dtype_name(index.dtype()));
  Tensor idx = index.detach().contiguous();
  const int64_t* p = idx.data<int64_t>();
  for (int64_t i = 0, m = idx.numel(); i < m; ++i)
    if (p[i] < 0 || p[i] >= n)
      fail<IndexError>("{}: index {} is out of range for axis {} of size {} (shape {})", op, p[i],
                       axis, n, xshape);
  return idx;
}

// out[o, i, r] = x[o, idx[i], r]; x contiguous.
Tensor index_select_kernel(const Tensor& x, int64_t axis, const Tensor& idx) {
  Split3 d = split3(x.shape(), axis);
  int64_t k = idx.numel();
  Shape s = x.shape();
  s[axis] = k;
  Tensor out = Tensor::empty(s, x.dtype());
  const int64_t* ip = idx.data<int64_t>();
  kernels::dispatch_all(x.dtype(), "index_select", [&]<class T>() {
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    int64_t rows = d.outer * k;
    kernels::parallel_for(rows, rows * d.inner > (1 << 16), [&](int64_t r) {
      int64_t o = r / k, i = r % k;
      std::memcpy(dst + r * d.inner, src + (o * d.n + ip[i]) * d.inner, d.inner * sizeof(T));
    });
  });
  return out;
}

// out = x (copied), out[o, idx[i], r] += src[o, i, r]. Serial over i: repeated indices accumulate.
Tensor index_add_kernel(const Tensor& x, int64_t axis, const Tensor& idx, const Tensor& src) {
  if (x.dtype() == bfloat16)  // accumulated in float32, rounded once
    return kernels::to_storage(
        index_add_kernel(kernels::in_compute(x), axis, idx, kernels::in_compute(src)), bfloat16);
  Split3 d = split3(x.shape(), axis);
  int64_t k = idx.numel();
  Tensor out = x.detach().contiguous().clone();
  Tensor s = src.detach().contiguous();
  const int64_t* ip = idx.data<int64_t>();
  kernels::dispatch_numeric(x.dtype(), "index_add", [&]<class T>() {
    const T* sp = s.data<T>();
    T* op = out.data<T>();
    kernels::parallel_for(d.outer, d.outer * k * d.inner > (1 << 16) && d.outer > 1,
                          [&](int64_t o) {
                            for (int64_t i = 0; i < k; ++i) {
                              T* to = op + (o * d.n + ip[i]) * d.inner;
                              const T* from = sp + (o * k + i) * d.inner;
                              for (int64_t r = 0; r < d.inner; ++r) to[r] += from[r];
                            }
                          });
  });
  return out;
}

// Shared by gather and scatter_add: calls f(index_position, x_position) for every element of
// `index` (contiguous), where x_position replaces the coordinate on `axis` by the index value.
template <class F>
void for_each_indexed(const Shape& ishape, const Shape& xshape, int64_t axis, const int64_t* ip,
                      F&& f) {
  int64_t nd = ishape.size();
  Shape xstr = contiguous_strides(xshape);
  int64_t coord[kMaxDims] = {0};
  int64_t base = 0;  // x position without the axis term
  for (int64_t p = 0, m = ishape.numel(); p < m; ++p) {
    f(p, base + ip[p] * xstr[axis]);
    for (int64_t dd = nd - 1; dd >= 0; --dd) {
      if (++coord[dd] < ishape[dd]) {
        if (dd != axis) base += xstr[dd];
        break;
      }
      if (dd != axis) base -= (ishape[dd] - 1) * xstr[dd];
      coord[dd] = 0;
    }
  }
}

void check_gather_shapes(const char* op, const Tensor& x, int64_t axis, const Tensor& index) {
  if (index.dim() != x.dim())
    fail<ShapeError>("{}: index of shape {} must have as many axes as the input {}", op,
                     index.shape(), x.shape());
  for (int64_t i = 0; i < x.dim(); ++i)
    if (i != axis && index.shape()[i] > x.shape()[i])
      fail<ShapeError>("{}: index of shape {} is larger than the input {} on axis {}", op,
                       index.shape(), x.shape(), i);
}

Tensor gather_kernel(const Tensor& x, int64_t axis, const Tensor& idx) {
  Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty(idx.shape(), x.dtype());
  kernels::dispatch_all(x.dtype(), "gather", [&]<class T>() {
    const T* xp = xc.data<T>();
    T* op = out.data<T>();
    for_each_indexed(idx.shape(), x.shape(), axis, idx.data<int64_t>(),
                     [&](int64_t p, int64_t q) { op[p] = xp[q]; });
  });
  return out;
}

Tensor scatter_add_kernel(const Tensor& x, int64_t axis, const Tensor& idx, const Tensor& src) {
  if (x.dtype() == bfloat16)  // accumulated in float32, rounded once
    return kernels::to_storage(
        scatter_add_kernel(kernels::in_compute(x), axis, idx, kernels::in_compute(src)), bfloat16);
  Tensor out = x.detach().contiguous().clone();
  Tensor s = src.detach().contiguous();
  kernels::dispatch_numeric(x.dtype(), "scatter_add", [&]<class T>() {
    const T* sp = s.data<T>();
    T* op = out.data<T>();
    for_each_indexed(idx.shape(), x.shape(), axis, idx.data<int64_t>(),
                     [&](int64_t p, int64_t q) { op[q] += sp[p]; });
  });
  return out;
}

struct SavedIndex {
  Tensor index;
};

using Pick = Tensor (*)(const Tensor&, int64_t, const Tensor&);
using AddAt = Tensor (*)(const Tensor&, int64_t, const Tensor&, const Tensor&);

// Records a pick op (index_select, gather): linear in x; its backward adds g into zeros of x's
// shape at the positions picked (`add_at`: index_add, scatter_add).
void record_pick(const char* name, Pick self, const Tensor& x, int64_t axis, const Tensor& idx,
                 Tensor& out, AddAt add_at) {
  Shape in = x.shape();
  record(op(name, self, x, axis, Const{idx}), out, SavedIndex{idx},
         rules::linear([in, axis, add_at](const SavedIndex& s, const Tensor& g) -> TensorList {
           return {add_at(zeros(in, g.dtype()), axis, s.index, g)};
         }));
}

// Records an add-at op (index_add, scatter_add): linear in x and src; d/dx = g, d/dsrc = g picked
// at the same positions (`pick`: index_select, gather).
void record_add_at(const char* name, AddAt self, const Tensor& x, int64_t axis, const Tensor& idx,
                   const Tensor& src, Tensor& out, Pick pick) {
  record(op(name, self, x, axis, Const{idx}, src), out, SavedIndex{idx},
         rules::linear(
             [axis, pick](const SavedIndex& s, const Tensor& g, const Node& n) -> TensorList {
               return {n.needs_input_grad(0) ? g : Tensor(),
                       n.needs_input_grad(1) ? pick(g, axis, s.index) : Tensor()};
             }));
}

void check_same_dtype(const char* op, const Tensor& x, const Tensor& src) {
  if (x.dtype() != src.dtype())
    fail<DtypeError>("{}: source dtype {} differs from the input's {}", op, dtype_name(src.dtype()),
                     dtype_name(x.dtype()));
}

}  // namespace

Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index) {
  if (x.dim() == 0) fail<ShapeError>("index_select: input must have at least one axis, got []");
  axis = normalize_axis(axis, x.dim(), "index_select");
  if (index.dim() > 1)
    fail<ShapeError>("index_select: index must be 1-D, got shape {}", index.shape());
  Tensor idx = checked_index("index_select", index, x.shape()[axis], axis, x.shape());
  Tensor out = index_select_kernel(x.contiguous(), axis, idx);
  if (needs_derivatives({&x}))
    record_pick("index_select", index_select, x, axis, idx, out, index_add);
  return out;
}

Tensor index_add(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& src) {
  if (x.dim() == 0) fail<ShapeError>("index_add: input must have at least one axis, got []");
  axis = normalize_axis(axis, x.dim(), "index_add");
  if (index.dim() > 1)
    fail<ShapeError>("index_add: index must be 1-D, got shape {}", index.shape());
  check_same_dtype("index_add", x, src);
  Shape want = x.shape();
  want[axis] = index.numel();
  if (!(src.shape() == want))
    fail<ShapeError>(
        "index_add: source of shape {} does not match input {} with {} indices on axis {} "
        "(expected {})",
        src.shape(), x.shape(), index.numel(), axis, want);
  Tensor idx = checked_index("index_add", index, x.shape()[axis], axis, x.shape());
  Tensor out = index_add_kernel(x, axis, idx, src);
  if (needs_derivatives({&x, &src}))
    record_add_at("index_add", index_add, x, axis, idx, src, out, index_select);
  return out;
}

Tensor gather(const Tensor& x, int64_t axis, const Tensor& index) {
  if (x.dim() == 0) fail<ShapeError>("gather: input must have at least one axis, got []");
  axis = normalize_axis(axis, x.dim(), "gather");
  check_gather_shapes("gather", x, axis, index);
  Tensor idx = checked_index("gather", index, x.shape()[axis], axis, x.shape());
  Tensor out = gather_kernel(x, axis, idx);
  if (needs_derivatives({&x})) record_pick("gather", gather, x, axis, idx, out, scatter_add);
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& src) {
  if (x.dim() == 0) fail<ShapeError>("scatter_add: input must have at least one axis, got []");
  axis = normalize_axis(axis, x.dim(), "scatter_add");
  check_gather_shapes("scatter_add", x, axis, index);
  check_same_dtype("scatter_add", x, src);
  if (!(src.shape() == index.shape()))
    fail<ShapeError>("scatter_add: source of shape {} must have the index's shape {}", src.shape(),
                     index.shape());
  Tensor idx = checked_index("scatter_add", index, x.shape()[axis], axis, x.shape());
  Tensor out = scatter_add_kernel(x, axis, idx, src);
  if (needs_derivatives({&x, &src}))
    record_add_at("scatter_add", scatter_add, x, axis, idx, src, out, gather);
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  if (weight.dim() != 2)
    fail<ShapeError>("embedding: weight must be [num_embeddings, dim], got {}", weight.shape());
  if (indices.dtype() != int64)
    fail<DtypeError>("embedding: indices must be int64, got {}", dtype_name(indices.dtype()));
  Shape out = indices.shape();
  out.push_back(weight.shape()[1]);
  Tensor flat = indices.reshape(Shape{indices.numel()});
  try {
    return reshape(index_select(weight, 0, flat), out);
  } catch (const IndexError& e) {
    fail<IndexError>("embedding: indices {} into a table of {} rows: {}", indices.shape(),
                     weight.shape()[0], e.what());
  }
}

Tensor one_hot(const Tensor& labels, int64_t num_classes, Dtype dtype) {
  if (num_classes <= 0)
    fail<ValueError>("one_hot: num_classes must be positive, got {}", num_classes);
  Tensor idx = checked_index("one_hot", labels, num_classes, labels.dim(), labels.shape());
  Shape s = labels.shape();
  s.push_back(num_classes);
  Tensor out = zeros(s, dtype);
  const int64_t* ip = idx.data<int64_t>();
  kernels::dispatch_all(dtype, "one_hot", [&]<class T>() {
    T* op = out.data<T>();
    for (int64_t i = 0, m = idx.numel(); i < m; ++i) op[i * num_classes + ip[i]] = T(1);
  });
  return out;
}

}  // namespace ag
