#include "autograd/ops/norm.h"

#include <cmath>

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
        "layer_norm", {&x, &w, &b}, out, {Save{x}, Save{w}},
        [axes, lead, eps](Node& node, const Tensor& g) -> TensorList {
          // xhat and rstd recomputed with differentiable ops, so double backward is exact.
          Tensor x = node.saved(0), w = node.saved(1);
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
