#include "autograd/ops/norm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "autograd/kernels/dispatch.h"
#include "autograd/node.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/unary.h"

namespace ag {

namespace {

// x viewed as [rows, n]: out = (x - mean) * rstd * w + b; mean and rstd ([rows]) are returned too.
template <class T>
void layer_norm_rows(const T* x, const T* w, const T* b, T* out, T* mean, T* rstd, int64_t rows,
                     int64_t n, double eps) {
#pragma omp parallel for if (rows * n > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += xr[i];
    double m = s / static_cast<double>(n);
    double v = 0;
    for (int64_t i = 0; i < n; ++i) v += (xr[i] - m) * (xr[i] - m);
    double rs = 1.0 / std::sqrt(v / static_cast<double>(n) + eps);
    T tm = static_cast<T>(m), trs = static_cast<T>(rs);
    T* o = out + r * n;
    for (int64_t i = 0; i < n; ++i) {
      T h = (xr[i] - tm) * trs;
      o[i] = w ? h * w[i] + (b ? b[i] : T(0)) : h + (b ? b[i] : T(0));
    }
    mean[r] = tm;
    rstd[r] = trs;
  }
}

// LayerNorm's backward in one pass over the rows of x [rows, n], from the mean and rstd the forward
// saved (xhat = (x - mean) * rstd, gy = g * w, or g without a weight):
//   gx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat))   per row
//   gw = sum over rows of g * xhat,  gb = sum over rows of g
// Any of gx, gw, gb may be null. The column sums are kept per thread in double and added in thread
// order, so the result does not depend on timing.
template <class T>
void layer_norm_backward_rows(const T* x, const T* g, const T* w, const T* mean, const T* rstd,
                              T* gx, T* gw, T* gb, int64_t rows, int64_t n) {
  const int threads = rows * n > (1 << 16) && !omp_in_parallel() ? omp_get_max_threads() : 1;
  const bool cols = gw || gb;
  std::vector<double> part(cols ? size_t(threads) * 2 * n : 0, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    double* pw = cols ? part.data() + size_t(t) * 2 * n : nullptr;
    double* pb = cols ? pw + n : nullptr;
    for (int64_t r = rows * t / nt; r < rows * (t + 1) / nt; ++r) {
      const T* xr = x + r * n;
      const T* gr = g + r * n;
      const T m = mean[r], rs = rstd[r];
      if (cols)
        for (int64_t i = 0; i < n; ++i) {
          pw[i] += static_cast<double>(gr[i] * ((xr[i] - m) * rs));
          pb[i] += static_cast<double>(gr[i]);
        }
      if (!gx) continue;
      double sy = 0, syh = 0;
      for (int64_t i = 0; i < n; ++i) {
        T gy = w ? gr[i] * w[i] : gr[i];
        sy += static_cast<double>(gy);
        syh += static_cast<double>(gy * ((xr[i] - m) * rs));
      }
      const T my = static_cast<T>(sy / static_cast<double>(n));
      const T myh = static_cast<T>(syh / static_cast<double>(n));
      T* o = gx + r * n;
      for (int64_t i = 0; i < n; ++i) {
        T gy = w ? gr[i] * w[i] : gr[i];
        o[i] = rs * (gy - my - ((xr[i] - m) * rs) * myh);
      }
    }
  }
  for (int64_t i = 0; cols && i < n; ++i) {
    double sw = 0, sb = 0;
    for (int t = 0; t < threads; ++t) {
      sw += part[size_t(t) * 2 * n + i];
      sb += part[size_t(t) * 2 * n + n + i];
    }
    if (gw) gw[i] = static_cast<T>(sw);
    if (gb) gb[i] = static_cast<T>(sb);
  }
}

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Shape& ns, const Tensor& weight, const Tensor& bias,
                  double eps) {
  int64_t k = ns.size();
  bool fits = k > 0 && x_in.dim() >= k;
  for (int64_t i = 0; fits && i < k; ++i) fits = x_in.shape()[x_in.dim() - k + i] == ns[i];
  if (!fits)
    fail<ShapeError>("layer_norm: input {} does not end with the normalized shape {}", x_in.shape(),
                     ns);
  if (weight.defined() && !(weight.shape() == ns))
    fail<ShapeError>("layer_norm: weight {} does not match the normalized shape {}", weight.shape(),
                     ns);
  if (bias.defined() && !(bias.shape() == ns))
    fail<ShapeError>("layer_norm: bias {} does not match the normalized shape {}", bias.shape(),
                     ns);
  if (!is_floating(x_in.dtype()))
    fail<DtypeError>("layer_norm: expected a float tensor, got {}", dtype_name(x_in.dtype()));
  Dtype d = x_in.dtype();
  Tensor x = x_in.contiguous();
  Tensor w = weight.defined() ? weight.to(d).contiguous() : Tensor();
  Tensor b = bias.defined() ? bias.to(d).contiguous() : Tensor();
  int64_t n = ns.numel(), rows = n ? x.numel() / n : 0;
  Tensor out = Tensor::empty(x.shape(), d);
  Shape stat_shape(x.shape().begin(), x.shape().end() - k);
  Tensor mean_t = Tensor::empty(stat_shape, d), rstd_t = Tensor::empty(stat_shape, d);
  kernels::dispatch_floating(d, "layer_norm", [&]<class T>() {
    layer_norm_rows<T>(x.data<T>(), w.defined() ? w.data<T>() : nullptr,
                       b.defined() ? b.data<T>() : nullptr, out.data<T>(), mean_t.data<T>(),
                       rstd_t.data<T>(), rows, n, eps);
  });
  if (any_requires_grad({&x, &w, &b})) {
    std::vector<int64_t> axes, lead;
    for (int64_t i = 0; i < k; ++i) axes.push_back(x.dim() - k + i);
    for (int64_t i = 0; i < x.dim() - k; ++i) lead.push_back(i);
    record(
        "layer_norm", {&x, &w, &b}, out, {Save{x}, Save{w}, Save{mean_t}, Save{rstd_t}},
        [axes, lead, eps, ns](Node& node, const Tensor& g) -> TensorList {
          Tensor x = node.saved(0), w = node.saved(1);
          if (!is_grad_enabled()) {
            // One pass from the saved statistics when this backward is not itself recorded.
            Dtype d = x.dtype();
            Tensor gc = g.to(d).contiguous();
            Tensor gx, gwt, gb;
            if (node.needs_input_grad(0)) gx = Tensor::empty(x.shape(), d);
            if (node.needs_input_grad(1)) gwt = Tensor::empty(ns, d);
            if (node.needs_input_grad(2)) gb = Tensor::empty(ns, d);
            int64_t n = ns.numel(), rows = n ? x.numel() / n : 0;
            kernels::dispatch_floating(d, "layer_norm", [&]<class T>() {
              auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
              layer_norm_backward_rows<T>(x.data<T>(), gc.data<T>(), ptr(w),
                                          node.saved(2).data<T>(), node.saved(3).data<T>(), ptr(gx),
                                          ptr(gwt), ptr(gb), rows, n);
            });
            return {gx, gwt, gb};
          }
          // xhat and rstd recomputed with differentiable ops, so double backward is exact.
          Tensor mu = mean(x, axes, true);
          Tensor xc = sub(x, mu);
          Tensor rstd = rsqrt(add(mean(mul(xc, xc), axes, true), eps));
          Tensor xhat = mul(xc, rstd);
          Tensor gw = w.defined() ? mul(g, w) : g;
          Tensor gx;
          if (node.needs_input_grad(0))
            gx = mul(rstd, sub(sub(gw, mean(gw, axes, true)),
                               mul(xhat, mean(mul(gw, xhat), axes, true))));
          Tensor gwt, gb;
          if (node.needs_input_grad(1)) gwt = lead.empty() ? mul(g, xhat) : sum(mul(g, xhat), lead);
          if (node.needs_input_grad(2)) gb = lead.empty() ? g : sum(g, lead);
          return {gx, gwt, gb};
        },
        [ns, eps](const TensorList& a) {
          return layer_norm(a[0], ns, a.size() > 1 ? a[1] : Tensor(),
                            a.size() > 2 ? a[2] : Tensor(), eps);
        });
  }
  return out;
}

}  // namespace ag
