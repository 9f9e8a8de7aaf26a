#include "autograd/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/node.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/unary.h"

namespace ag {

namespace {

// Normalised, sorted, de-duplicated axes; empty input means every axis.
std::vector<int64_t> resolve_axes(const Axes& axes, int64_t ndim, const char* op) {
  std::vector<int64_t> r;
  if (axes.empty()) {
    for (int64_t i = 0; i < ndim; ++i) r.push_back(i);
    return r;
  }
  for (int64_t a : axes) r.push_back(normalize_axis(a, ndim, op));
  std::sort(r.begin(), r.end());
  if (std::adjacent_find(r.begin(), r.end()) != r.end())
    fail<IndexError>("{}: an axis appears twice", op);
  if (ndim == 0) r.clear();
  return r;
}

Shape keepdim_shape(const Shape& s, const std::vector<int64_t>& axes) {
  Shape k = s;
  for (int64_t a : axes) k[a] = 1;
  return k;
}

Shape reduced_shape(const Shape& s, const std::vector<int64_t>& axes, bool keepdim) {
  if (keepdim) return keepdim_shape(s, axes);
  Shape r;
  for (int64_t i = 0; i < s.size(); ++i)
    if (!std::binary_search(axes.begin(), axes.end(), i)) r.push_back(s[i]);
  return r;
}

// Gives a freshly made (contiguous, unshared) result its final shape without a view.
void drop_axes(Tensor& out, const Shape& shape) {
  out.impl()->shape = shape;
  out.impl()->strides = contiguous_strides(shape);
}

// g of the reduced shape -> broadcastable against the input (reduced axes restored as size 1).
Tensor restore_axes(const Tensor& g, const Shape& in, const std::vector<int64_t>& axes) {
  return reshape(g, keepdim_shape(in, axes));
}

// out[keep] = combine(out[keep], x[...]) over reduced axes; out starts at `init`.
// `row` folds a contiguous row into one value when the output is constant along the inner axis.
template <class T, class Acc, class Combine>
void reduce_kernel(const Tensor& out_keep, const Tensor& x, Combine combine) {
  auto L = kernels::make_loop<2>(x.shape(), {out_keep.impl(), x.impl()});
  bool parallel = true;
  for (int64_t d = 0; d + 1 < L.ndim; ++d) parallel = parallel && L.stride[0][d] != 0;
  kernels::for_each_row(
      L,
      [combine](char** p, const int64_t* s, int64_t n) {
        T* o = reinterpret_cast<T*>(p[0]);
        if (s[0] == 0) {
          Acc acc = static_cast<Acc>(*o);
          const char* a = p[1];
          if (s[1] == sizeof(T)) {
            const T* v = reinterpret_cast<const T*>(a);
            for (int64_t i = 0; i < n; ++i) acc = combine(acc, static_cast<Acc>(v[i]));
          } else {
            for (int64_t i = 0; i < n; ++i)
              acc = combine(acc, static_cast<Acc>(*reinterpret_cast<const T*>(a + i * s[1])));
          }
          *o = static_cast<T>(acc);
        } else {
          for (int64_t i = 0; i < n; ++i) {
            T* oi = reinterpret_cast<T*>(p[0] + i * s[0]);
            *oi = static_cast<T>(combine(static_cast<Acc>(*oi),
                                         static_cast<Acc>(*reinterpret_cast<const T*>(p[1] + i * s[1]))));
          }
        }
      },
      parallel);
}

template <class T>
struct acc_type {
  using type = T;
};
template <>
struct acc_type<float> {
  using type = double;
};

}  // namespace

Tensor sum(const Tensor& x, const Axes& axes_in, bool keepdim) {
  auto axes = resolve_axes(axes_in, x.dim(), "sum");
  Dtype d = is_floating(x.dtype()) ? x.dtype() : int64;
  Tensor in = x.dtype() == d ? x : x.to(d);
  Shape keep = keepdim_shape(x.shape(), axes);
  Tensor out = zeros(keep, d);
  kernels::dispatch_numeric(d, "sum", [&]<class T>() {
    reduce_kernel<T, typename acc_type<T>::type>(out, in, [](auto a, auto b) { return a + b; });
  });
  if (!keepdim) drop_axes(out, reduced_shape(x.shape(), axes, false));
  if (any_requires_grad({&x})) {
    Shape s = x.shape();
    record("sum", {&x}, out, {},
           [s, axes](Node&, const Tensor& g) -> TensorList {
             return {expand(restore_axes(g, s, axes), s)};
           },
           [axes, keepdim](const TensorList& a) { return sum(a[0], axes, keepdim); });
  }
  return out;
}

Tensor mean(const Tensor& x, const Axes& axes_in, bool keepdim) {
  if (!is_floating(x.dtype()))
    fail<DtypeError>("mean: expected a float tensor, got {}", dtype_name(x.dtype()));
  auto axes = resolve_axes(axes_in, x.dim(), "mean");
  int64_t count = 1;
  for (int64_t a : axes) count *= x.shape()[a];
  return mul(sum(x, axes, keepdim), 1.0 / static_cast<double>(count));
}

}  // namespace ag
