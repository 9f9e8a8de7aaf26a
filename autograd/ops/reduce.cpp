#include "autograd/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <fmt/ranges.h>

#include "autograd/kernels/bf16.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/kernels/simd.h"
#include "autograd/op.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/index.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/unary.h"

namespace ag {

namespace {

// An axis of a tensor of `shape` mapped into [0, ndim) (a 0-d tensor accepts 0 and -1); IndexError
// naming `op` and the shape otherwise.
int64_t resolve_axis(int64_t axis, const Shape& shape, const char* op) {
  int64_t n = shape.size() == 0 ? 1 : shape.size();
  if (axis < -n || axis >= n)
    fail<IndexError>("{}: axis {} is out of range for a tensor of shape {}", op, axis, shape);
  return axis < 0 ? axis + n : axis;
}

// Normalised, sorted, de-duplicated axes; empty input means every axis.
std::vector<int64_t> resolve_axes(const Axes& axes, const Shape& shape, const char* op) {
  const int64_t ndim = shape.size();
  std::vector<int64_t> r;
  if (axes.empty()) {
    for (int64_t i = 0; i < ndim; ++i) r.push_back(i);
    return r;
  }
  for (int64_t a : axes) r.push_back(resolve_axis(a, shape, op));
  std::sort(r.begin(), r.end());
  if (std::adjacent_find(r.begin(), r.end()) != r.end())
    fail<IndexError>("{}: an axis appears twice in {} (shape {})", op, fmt::join(axes, ", "),
                     shape);
  if (ndim == 0) r.clear();
  return r;
}

void require_float(const Tensor& x, const char* op) {
  if (!is_floating(x.dtype()))
    fail<DtypeError>("{}: expected a float32 or float64 tensor, got {} of shape {}", op,
                     dtype_name(x.dtype()), x.shape());
}

// Extremum reductions have no identity: every reduced axis must be non-empty.
void require_nonempty(const Shape& s, const std::vector<int64_t>& axes, const char* op) {
  for (int64_t a : axes)
    if (s[a] == 0)
      fail<IndexError>("{}: cannot reduce over axis {} of size 0 (shape {})", op, a, s);
}

int64_t reduced_count(const Shape& s, const std::vector<int64_t>& axes) {
  int64_t n = 1;
  for (int64_t a : axes) n *= s[a];
  return n;
}

template <class T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>)
    return std::isnan(v);
  else
    return false;
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

// acc combined with the n contiguous values v[0..n), in eight interleaved partial results (eight
// independent chains of additions instead of one, each waiting for the last), then combined in
// order: the same result on every run.
template <class T, class Acc, class Combine>
Acc fold_row(Acc acc, const T* v, int64_t n, const Combine& combine) {
  constexpr int64_t K = 8;
  int64_t i = 0;
  if (n >= 2 * K) {
    Acc part[K];
    for (int64_t j = 0; j < K; ++j) part[j] = static_cast<Acc>(v[j]);
    for (i = K; i + K <= n; i += K)
      for (int64_t j = 0; j < K; ++j) part[j] = combine(part[j], static_cast<Acc>(v[i + j]));
    for (int64_t j = 0; j < K; ++j) acc = combine(acc, part[j]);
  }
  for (; i < n; ++i) acc = combine(acc, static_cast<Acc>(v[i]));
  return acc;
}

// One long row (L.ndim == 1) into the single value at L.base[0], on `threads` threads: per-thread
// partial results, combined in thread order (the same result on every run with the same thread
// count).
template <class T, class Acc, class Combine>
void reduce_long_row(const kernels::Loop<2>& L, const Combine& combine, int threads) {
  const int64_t inner = L.size[0];
  std::vector<Acc> part(threads);
  std::vector<char> has(threads, 0);
  const char* base = L.base[1];
  const int64_t step = L.stride[1][0];
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t b = inner * t / nt, e = inner * (t + 1) / nt;
    if (b < e) {
      Acc acc = static_cast<Acc>(*reinterpret_cast<const T*>(base + b * step));
      if (step == sizeof(T)) {
        acc = fold_row<T, Acc>(acc, reinterpret_cast<const T*>(base) + b + 1, e - b - 1, combine);
      } else {
        for (int64_t i = b + 1; i < e; ++i)
          acc = combine(acc, static_cast<Acc>(*reinterpret_cast<const T*>(base + i * step)));
      }
      part[t] = acc;
      has[t] = 1;
    }
  }
  T* o = reinterpret_cast<T*>(L.base[0]);
  Acc acc = static_cast<Acc>(*o);
  for (int t = 0; t < threads; ++t)
    if (has[t]) acc = combine(acc, part[t]);
  *o = static_cast<T>(acc);
}

// One row of for_each_row: n values of x (byte stride s[1]) folded into out (byte stride s[0]; 0
// when the row is reduced into one value). Inlined into the row loop.
template <class T, class Acc, class Combine>
[[gnu::always_inline]] inline void reduce_row(char** p, const int64_t* s, int64_t n,
                                              const Combine& combine, bool simd_sum) {
  T* o = reinterpret_cast<T*>(p[0]);
  if (s[0] == 0) {
    Acc acc = static_cast<Acc>(*o);
    const char* a = p[1];
    if (s[1] == sizeof(T)) {
      const T* v = reinterpret_cast<const T*>(a);
      if constexpr (std::is_floating_point_v<T>) {
        if (simd_sum) {
          acc = combine(acc, static_cast<Acc>(kernels::row_sum<T>(n, [v]<class V>(int64_t k, V) {
                          return kernels::load<V>(v + k);
                        })));
          *o = static_cast<T>(acc);
          return;
        }
      }
      acc = fold_row<T, Acc>(acc, v, n, combine);
    } else {
      for (int64_t i = 0; i < n; ++i)
        acc = combine(acc, static_cast<Acc>(*reinterpret_cast<const T*>(a + i * s[1])));
    }
    *o = static_cast<T>(acc);
  } else if (s[0] == sizeof(T) && s[1] == sizeof(T)) {
    // Reducing an outer axis: fold a whole contiguous row into the output row (vectorised).
    const T* v = reinterpret_cast<const T*>(p[1]);
    for (int64_t i = 0; i < n; ++i)
      o[i] = static_cast<T>(combine(static_cast<Acc>(o[i]), static_cast<Acc>(v[i])));
  } else {
    for (int64_t i = 0; i < n; ++i) {
      T* oi = reinterpret_cast<T*>(p[0] + i * s[0]);
      *oi = static_cast<T>(combine(static_cast<Acc>(*oi),
                                   static_cast<Acc>(*reinterpret_cast<const T*>(p[1] + i * s[1]))));
    }
  }
}

// out[keep] = combine(out[keep], x[...]) over reduced axes; out starts at `init`.
// simd_sum (sums of floats only): a contiguous row folded into one value is summed a SIMD register
// at a time (kernels::row_sum, float partials of at most 16 terms per lane, a double total) instead
// of one dependent double addition per element; the bias gradients of convolutions are such rows.
template <class T, class Acc, class Combine>
void reduce_kernel(const Tensor& out_keep, const Tensor& x, Combine combine,
                   bool simd_sum = false) {
  auto L = kernels::make_loop<2>(x.shape(), {out_keep.impl(), x.impl()});
  bool parallel = true;
  for (int64_t d = 0; d + 1 < L.ndim; ++d) parallel = parallel && L.stride[0][d] != 0;
  const int64_t inner = L.size[L.ndim - 1];
  if (L.numel > 0 && L.stride[0][L.ndim - 1] == 0) {
    // The innermost axis is reduced: for_each_row shares out whole rows only, so a single long row
    // would run on one thread.
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (L.ndim == 1 && threads > 1 && inner >= 2 * kernels::kParallelGrain) {
      threads = static_cast<int>(std::min<int64_t>(threads, inner / kernels::kParallelGrain));
      reduce_long_row<T, Acc>(L, combine, threads);
      return;
    }
  }
  kernels::for_each_row(
      L,
      [combine, simd_sum](char** p, const int64_t* s, int64_t n) {
        reduce_row<T, Acc>(p, s, n, combine, simd_sum);
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
  auto axes = resolve_axes(axes_in, x.shape(), "sum");
  const Dtype storage = is_floating(x.dtype()) ? x.dtype() : int64;
  const Dtype d = kernels::compute_dtype(storage);
  Tensor in = x.dtype() == d ? x : kernels::cast(x.detach(), d);
  Shape keep = keepdim_shape(x.shape(), axes);
  Tensor out = zeros(keep, d);
  kernels::dispatch_numeric(d, "sum", [&]<class T>() {
    reduce_kernel<T, typename acc_type<T>::type>(
        out, in, [](auto a, auto b) { return a + b; }, /*simd_sum=*/true);
  });
  out = kernels::to_storage(out, storage);
  if (!keepdim) drop_axes(out, reduced_shape(x.shape(), axes, false));
  if (needs_derivatives({&x})) {
    struct None {};
    Shape s = x.shape();
    record(op("sum", sum, x, axes, keepdim), out, None{},
           rules::linear([s, axes](const None&, const Tensor& g) -> TensorList {
             return {expand(restore_axes(g, s, axes), s)};
           }));
  }
  return out;
}

Tensor mean(const Tensor& x, const Axes& axes_in, bool keepdim) {
  require_float(x, "mean");
  auto axes = resolve_axes(axes_in, x.shape(), "mean");
  int64_t count = reduced_count(x.shape(), axes);
  if (x.dtype() == bfloat16)  // summed and scaled in float32, rounded once
    return mul(sum(x.to(float32), axes, keepdim), 1.0 / static_cast<double>(count)).to(bfloat16);
  return mul(sum(x, axes, keepdim), 1.0 / static_cast<double>(count));
}

Tensor var(const Tensor& x, const Axes& axes_in, int64_t correction, bool keepdim) {
  require_float(x, "var");
  if (correction < 0) fail<ValueError>("var: correction must be >= 0, got {}", correction);
  auto axes = resolve_axes(axes_in, x.shape(), "var");
  // n - correction <= 0 divides by zero: NaN (or inf), as in PyTorch.
  double dof =
      static_cast<double>(std::max<int64_t>(reduced_count(x.shape(), axes) - correction, 0));
  Tensor d = sub(x, mean(x, axes, /*keepdim=*/true));
  return mul(sum(mul(d, d), axes, keepdim), 1.0 / dof);
}

Tensor std(const Tensor& x, const Axes& axes, int64_t correction, bool keepdim) {
  require_float(x, "std");
  if (correction < 0) fail<ValueError>("std: correction must be >= 0, got {}", correction);
  resolve_axes(axes, x.shape(), "std");
  return sqrt(var(x, axes, correction, keepdim));
}

// ---- max / min ---------------------------------------------------------------------------------

namespace {

// NaN wins (it propagates, as in PyTorch); otherwise the larger (smaller) value.
template <class T>
bool better(T candidate, T best, bool is_max) {
  if (is_nan(best)) return false;
  return is_nan(candidate) || (is_max ? candidate > best : candidate < best);
}

Tensor extremum(const char* op, const Tensor& x, const Axes& axes_in, bool keepdim, bool is_max) {
  auto axes = resolve_axes(axes_in, x.shape(), op);
  require_nonempty(x.shape(), axes, op);
  Shape keep = keepdim_shape(x.shape(), axes);
  Tensor xc = kernels::in_compute(x);
  Tensor out = Tensor::empty(keep, xc.dtype());
  kernels::dispatch_numeric(xc.dtype(), op, [&]<class T>() {
    T init = is_max ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
    if constexpr (std::is_floating_point_v<T>)
      init = is_max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    std::fill_n(out.data<T>(), out.numel(), init);
    reduce_kernel<T, T>(out, xc, [is_max](T a, T b) { return better(b, a, is_max) ? b : a; });
  });
  out = kernels::to_storage(out, x.dtype());  // exact: the extremum is one of x's values
  if (!keepdim) drop_axes(out, reduced_shape(x.shape(), axes, false));
  if (needs_derivatives({&x})) {
    struct Saved {
      Tensor x, out;
    };
    Shape s = x.shape();
    // Every element equal to the extremum shares the gradient evenly: d/dx = share, a constant.
    auto share = [s, axes](const Saved& v) {
      Tensor y = restore_axes(v.out.detach(), s, axes);
      Tensor hit = eq(v.x, y).to(v.out.dtype());
      return div(hit, sum(hit, axes, /*keepdim=*/true));
    };
    record(ag::op(op, extremum, op, x, axes, keepdim, is_max), out, Saved{x, out},
           Rules{.backward = [s, axes, share](const Saved& v, const Tensor& g) -> TensorList {
                   return {mul(restore_axes(g, s, axes), share(v))};
                 },
                 .jvp =
                     [axes, keepdim, share](const Saved& v, const TensorList& t) {
                       return sum(mul(t[0], share(v)), axes, keepdim);
                     }});
  }
  return out;
}

// x (contiguous) seen as [outer, n, inner] around `axis`.
struct AxisSplit {
  int64_t outer = 1, n = 1, inner = 1;
};
AxisSplit split_at(const Shape& s, int64_t axis) {
  AxisSplit v;
  for (int64_t i = 0; i < s.size(); ++i) {
    if (i < axis) v.outer *= s[i];
    if (i == axis) v.n = s[i];
    if (i > axis) v.inner *= s[i];
  }
  return v;
}

// Values and first indices of the extremum along `axis`. `values` may be undefined (argmax).
void arg_extremum_kernel(const Tensor& x, int64_t axis, bool is_max, const Tensor& values,
                         const Tensor& indices, const char* op) {
  if (x.dtype() == bfloat16) {  // on a float32 copy; the values are exact in bfloat16 again
    Tensor vf = values.defined() ? Tensor::empty(values.shape(), float32) : Tensor();
    arg_extremum_kernel(kernels::cast(x.detach(), float32), axis, is_max, vf, indices, op);
    if (values.defined()) kernels::copy_into(values, vf);
    return;
  }
  Tensor xc = x.detach().contiguous();
  AxisSplit v = split_at(x.shape(), axis);
  kernels::dispatch_numeric(x.dtype(), op, [&]<class T>() {
    const T* px = xc.data<T>();
    T* pv = values.defined() ? values.data<T>() : nullptr;
    int64_t* pi = indices.data<int64_t>();
    kernels::parallel_for(
        v.outer, v.outer * v.n * v.inner > kernels::kParallelGrain, [&](int64_t o) {
          // Walk the reduced axis in the outer loop so that the inner axis stays contiguous.
          std::vector<T> best(px + o * v.n * v.inner, px + o * v.n * v.inner + v.inner);
          int64_t* idx = pi + o * v.inner;
          std::fill_n(idx, v.inner, 0);
          for (int64_t k = 1; k < v.n; ++k) {
            const T* row = px + (o * v.n + k) * v.inner;
            for (int64_t i = 0; i < v.inner; ++i)
              if (better(row[i], best[i], is_max)) {
                best[i] = row[i];
                idx[i] = k;
              }
          }
          if (pv) std::copy(best.begin(), best.end(), pv + o * v.inner);
        });
  });
}

std::pair<Tensor, Tensor> extremum_along(const char* op, const Tensor& x, int64_t axis_in,
                                         bool keepdim, bool is_max, bool with_values) {
  int64_t axis = resolve_axis(axis_in, x.shape(), op);
  std::vector<int64_t> axes;
  if (x.dim() > 0) axes.push_back(axis);
  require_nonempty(x.shape(), axes, op);
  Shape keep = keepdim_shape(x.shape(), axes);
  Tensor values = with_values ? Tensor::empty(keep, x.dtype()) : Tensor();
  Tensor indices = Tensor::empty(keep, int64);
  arg_extremum_kernel(x, axis, is_max, values, indices, op);
  Shape out_shape = reduced_shape(x.shape(), axes, keepdim);
  drop_axes(indices, out_shape);
  if (!with_values) return {values, indices};
  drop_axes(values, out_shape);
  if (needs_derivatives({&x})) {
    struct Saved {
      Tensor indices;
    };
    Shape s = x.shape();
    int64_t n = x.dim() > 0 ? s[axis] : 1;
    // The derivative picks the element at the selected index along `axis`.
    record(ag::op(op, extremum_along, op, x, axis_in, keepdim, is_max, with_values), values,
           Saved{indices},
           Rules{.backward = [s, axes, axis, n](const Saved& v, const Tensor& g) -> TensorList {
                   Shape along;
                   for (int64_t i = 0; i < s.size(); ++i) along.push_back(i == axis ? n : 1);
                   Tensor pos = reshape(arange(n, int64), along);
                   Tensor hit = eq(restore_axes(v.indices, s, axes), pos);
                   return {where(hit, restore_axes(g, s, axes), zeros(Shape{}, g.dtype()))};
                 },
                 .jvp =
                     [s, axes, axis, keepdim](const Saved& v, const TensorList& t) {
                       if (s.size() == 0) return t[0];
                       Tensor picked = gather(t[0], axis, restore_axes(v.indices, s, axes));
                       return keepdim ? picked : squeeze(picked, axis);
                     }});
  }
  return {values, indices};
}

}  // namespace

Tensor amax(const Tensor& x, const Axes& axes, bool keepdim) {
  return extremum("amax", x, axes, keepdim, true);
}
Tensor amin(const Tensor& x, const Axes& axes, bool keepdim) {
  return extremum("amin", x, axes, keepdim, false);
}
Tensor max(const Tensor& x) { return extremum("max", x, {}, false, true); }
Tensor min(const Tensor& x) { return extremum("min", x, {}, false, false); }

std::pair<Tensor, Tensor> max(const Tensor& x, int64_t axis, bool keepdim) {
  return extremum_along("max", x, axis, keepdim, true, true);
}
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t axis, bool keepdim) {
  return extremum_along("min", x, axis, keepdim, false, true);
}
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim) {
  return extremum_along("argmax", x, axis, keepdim, true, false).second;
}
Tensor argmin(const Tensor& x, int64_t axis, bool keepdim) {
  return extremum_along("argmin", x, axis, keepdim, false, false).second;
}

// ---- logsumexp, norm ---------------------------------------------------------------------------

Tensor logsumexp(const Tensor& x, const Axes& axes_in, bool keepdim) {
  require_float(x, "logsumexp");
  auto axes = resolve_axes(axes_in, x.shape(), "logsumexp");
  // Shift by the (constant) max so exp never overflows; a non-finite max (a row of -inf, +inf or
  // NaN, or an empty row) shifts by 0 instead, which gives -inf, +inf or NaN as it should.
  Tensor shift = zeros(keepdim_shape(x.shape(), axes), x.dtype());
  if (x.numel() > 0) {
    Tensor m = amax(x.detach(), axes, /*keepdim=*/true);
    shift = where(lt(abs(m), full(Shape{}, std::numeric_limits<double>::infinity(), m.dtype())), m,
                  shift);
  }
  Tensor out = add(log(sum(exp(sub(x, shift)), axes, /*keepdim=*/true)), shift);
  return keepdim ? out : reshape(out, reduced_shape(x.shape(), axes, false));
}

Tensor norm(const Tensor& x, double p, const Axes& axes_in, bool keepdim) {
  require_float(x, "norm");
  auto axes = resolve_axes(axes_in, x.shape(), "norm");
  if (std::isinf(p) && p > 0) {
    require_nonempty(x.shape(), axes, "norm");
    return amax(abs(x), axes, keepdim);
  }
  if (!(p > 0))
    fail<ValueError>("norm: p must be positive or infinity, got {} (input {})", p, x.shape());
  Tensor xd = x.detach();
  Tensor out = p == 1   ? sum(abs(xd), axes, keepdim)
               : p == 2 ? sqrt(sum(mul(xd, xd), axes, keepdim))
                        : pow(sum(pow(abs(xd), p), axes, keepdim), 1.0 / p);
  if (needs_derivatives({&x})) {
    struct Saved {
      Tensor x, out;
    };
    Shape s = x.shape();
    // d = sign(x) |x|^(p-1) / out^(p-1) (p = 1: sign(x), p = 2: x / out); a zero norm (all x = 0)
    // gets a zero derivative.
    auto d = [p, s, axes](const Saved& v) {
      if (p == 1) return sign(v.x);
      Tensor y = restore_axes(v.out, s, axes);
      Tensor safe = where(eq(y, zeros(Shape{}, y.dtype())), ones(Shape{}, y.dtype()), y);
      if (p == 2) return div(v.x, safe);
      return mul(sign(v.x), div(pow(abs(v.x), p - 1), pow(safe, p - 1)));
    };
    record(op("norm", norm, x, p, axes, keepdim), out, Saved{x, out},
           Rules{.backward = [s, axes, d](const Saved& v, const Tensor& g) -> TensorList {
                   return {mul(restore_axes(g, s, axes), d(v))};
                 },
                 .jvp = [axes, keepdim, d](
                            const Saved& v,
                            const TensorList& t) { return sum(mul(t[0], d(v)), axes, keepdim); }});
  }
  return out;
}

// ---- softmax, log_softmax ----------------------------------------------------------------------

namespace {

// Softmax (or log-softmax) of every lane of x [outer, n, inner] along n, shifted by the lane's max.
// Exponentials in T, their sum in double; contiguous lanes (inner = 1) a SIMD register at a time.
template <class T>
void softmax_kernel(const T* x, T* y, AxisSplit v, bool log) {
  using kernels::load;
  kernels::parallel_for(v.outer, v.outer * v.n * v.inner > kernels::kParallelGrain, [&](int64_t o) {
    for (int64_t i = 0; i < v.inner; ++i) {
      const T* xr = x + o * v.n * v.inner + i;
      T* yr = y + o * v.n * v.inner + i;
      const int64_t step = v.inner;
      if (step == 1) {
        const T m = kernels::row_max(xr, v.n);
        const double total = kernels::exp_shifted_sum(xr, log ? nullptr : yr, v.n, m);
        if (log) {
          const T lt = static_cast<T>(std::log(total));
          kernels::map_row(yr, v.n,
                           [&]<class V>(int64_t k, V) { return (load<V>(xr + k) - V(m)) - V(lt); });
        } else {
          const T inv = static_cast<T>(1.0 / total);
          kernels::map_row(yr, v.n,
                           [&]<class V>(int64_t k, V) { return load<V>(yr + k) * V(inv); });
        }
        continue;
      }
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t k = 0; k < v.n; ++k) m = std::max(m, xr[k * step]);
      double total = 0;
      for (int64_t k = 0; k < v.n; ++k) {
        T e = std::exp(xr[k * step] - m);
        total += static_cast<double>(e);
        if (!log) yr[k * step] = e;
      }
      if (log) {
        T lt = static_cast<T>(std::log(total));
        for (int64_t k = 0; k < v.n; ++k) yr[k * step] = (xr[k * step] - m) - lt;
      } else {
        T inv = static_cast<T>(1.0 / total);
        for (int64_t k = 0; k < v.n; ++k) yr[k * step] *= inv;
      }
    }
  });
}

struct SavedOut {
  Tensor out;
};

Tensor softmax_forward(const char* op, const Tensor& x, int64_t axis, bool log) {
  require_float(x, op);
  Tensor xc = kernels::in_compute(x.detach()).contiguous();
  Tensor out = Tensor::empty(x.shape(), xc.dtype());
  AxisSplit v = split_at(x.shape(), axis);
  kernels::dispatch_floating(
      xc.dtype(), op, [&]<class T>() { softmax_kernel<T>(xc.data<T>(), out.data<T>(), v, log); });
  return kernels::to_storage(out, x.dtype());
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t axis_in) {
  int64_t axis = resolve_axis(axis_in, x.shape(), "softmax");
  Tensor out = softmax_forward("softmax", x, axis, false);
  if (needs_derivatives({&x})) {
    // The Jacobian is symmetric: the same formula serves backward (v = g) and the JVP (v = t).
    auto jacobian_times = [axis](const SavedOut& s, const Tensor& v) {
      return mul(s.out, sub(v, sum(mul(v, s.out), {axis}, /*keepdim=*/true)));
    };
    record(op("softmax", softmax, x, axis), out, SavedOut{out},
           Rules{.backward = [jacobian_times](const SavedOut& s, const Tensor& g) -> TensorList {
                   return {jacobian_times(s, g)};
                 },
                 .jvp = [jacobian_times](const SavedOut& s,
                                         const TensorList& t) { return jacobian_times(s, t[0]); }});
  }
  return out;
}

Tensor log_softmax(const Tensor& x, int64_t axis_in) {
  int64_t axis = resolve_axis(axis_in, x.shape(), "log_softmax");
  Tensor out = softmax_forward("log_softmax", x, axis, true);
  if (needs_derivatives({&x}))
    record(op("log_softmax", log_softmax, x, axis), out, SavedOut{out},
           Rules{.backward = [axis](const SavedOut& s, const Tensor& g) -> TensorList {
                   return {sub(g, mul(exp(s.out), sum(g, {axis}, /*keepdim=*/true)))};
                 },
                 .jvp =
                     [axis](const SavedOut& s, const TensorList& t) {
                       return sub(t[0], sum(mul(exp(s.out), t[0]), {axis}, /*keepdim=*/true));
                     }});
  return out;
}

}  // namespace ag
