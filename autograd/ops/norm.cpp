#include "autograd/ops/norm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "autograd/kernels/bf16.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/kernels/simd.h"
#include "autograd/op.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/shape.h"
#include "autograd/ops/unary.h"

namespace ag {

namespace {

// x viewed as [rows, n]: out = (x - mean) * rstd * w + b; mean and rstd ([rows]) are returned too.
// Sums run a SIMD register at a time with a double total (kernels::row_sum).
template <class T>
void layer_norm_rows(const T* x, const T* w, const T* b, T* out, T* mean, T* rstd, int64_t rows,
                     int64_t n, double eps) {
  using kernels::load;
  kernels::parallel_for(rows, rows * n > (1 << 16), [&](int64_t r) {
    const T* xr = x + r * n;
    const double m =
        kernels::row_sum<T>(n, [&]<class V>(int64_t k, V) { return load<V>(xr + k); }) /
        static_cast<double>(n);
    const T tm = static_cast<T>(m);
    const double v = kernels::row_sum<T>(n, [&]<class V>(int64_t k, V) {
      V d = load<V>(xr + k) - V(tm);
      return d * d;
    });
    const T trs = static_cast<T>(1.0 / std::sqrt(v / static_cast<double>(n) + eps));
    kernels::map_row(out + r * n, n, [&]<class V>(int64_t k, V) {
      V h = (load<V>(xr + k) - V(tm)) * V(trs);
      if (w) h = h * load<V>(w + k);
      if (b) h = h + load<V>(b + k);
      return h;
    });
    mean[r] = tm;
    rstd[r] = trs;
  });
}

// One row's share of LayerNorm's column sums: pw += g * xhat, pb += g (n columns, SIMD).
template <class T, class Xhat>
[[gnu::always_inline]] inline void add_column_sums(T* pw, T* pb, const T* gr, const Xhat& xhat,
                                                   int64_t n) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = B::size;
  int64_t k = 0;
  for (; k + W <= n; k += W) {
    B gk = B::load_unaligned(gr + k);
    (B::load_unaligned(pw + k) + gk * xhat(k, B{})).store_unaligned(pw + k);
    (B::load_unaligned(pb + k) + gk).store_unaligned(pb + k);
  }
  for (; k < n; ++k) {
    pw[k] += gr[k] * xhat(k, T{});
    pb[k] += gr[k];
  }
}

// One row of LayerNorm's input gradient: gx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat)).
template <class T, class Gy, class Xhat>
[[gnu::always_inline]] inline void layer_norm_gx_row(T* gx, const Gy& gy, const Xhat& xhat, T rs,
                                                     int64_t n) {
  const double sy = kernels::row_sum<T>(n, [&]<class V>(int64_t k, V) { return gy(k, V{}); });
  const double syh =
      kernels::row_sum<T>(n, [&]<class V>(int64_t k, V) { return gy(k, V{}) * xhat(k, V{}); });
  const T my = static_cast<T>(sy / static_cast<double>(n));
  const T myh = static_cast<T>(syh / static_cast<double>(n));
  kernels::map_row(gx, n, [&]<class V>(int64_t k, V) {
    return V(rs) * (gy(k, V{}) - V(my) - xhat(k, V{}) * V(myh));
  });
}

// gw[i], gb[i] (either may be null): the per-thread double column sums `total` ([threads][2][n])
// added in thread order.
template <class T>
void sum_thread_columns(const std::vector<double>& total, int threads, T* gw, T* gb, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double sw = 0, sb = 0;
    for (int t = 0; t < threads; ++t) {
      sw += total[size_t(t) * 2 * n + i];
      sb += total[size_t(t) * 2 * n + n + i];
    }
    if (gw) gw[i] = static_cast<T>(sw);
    if (gb) gb[i] = static_cast<T>(sb);
  }
}

// LayerNorm's backward in one pass over the rows of x [rows, n], from the mean and rstd the forward
// saved (xhat = (x - mean) * rstd, gy = g * w, or g without a weight):
//   gx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat))   per row
//   gw = sum over rows of g * xhat,  gb = sum over rows of g
// Any of gx, gw, gb may be null. The column sums are kept per thread, in T over at most 64 rows at
// a time and in double beyond, and added in thread order: the same result every run for a given
// number of threads.
template <class T>
void layer_norm_backward_rows(const T* x, const T* g, const T* w, const T* mean, const T* rstd,
                              T* gx, T* gw, T* gb, int64_t rows, int64_t n) {
  using kernels::load;
  const int threads = rows * n > (1 << 16) && !omp_in_parallel() ? omp_get_max_threads() : 1;
  const bool cols = gw || gb;
  // Per thread: column sums of g * xhat and g over the last < 64 rows in T (SIMD), and over the
  // rows before in double.
  constexpr int64_t kFlush = 64;
  std::vector<T> part(cols ? size_t(threads) * 2 * n : 0, T(0));
  std::vector<double> total(cols ? size_t(threads) * 2 * n : 0, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    T* pw = cols ? part.data() + size_t(t) * 2 * n : nullptr;
    T* pb = cols ? pw + n : nullptr;
    double* tw = cols ? total.data() + size_t(t) * 2 * n : nullptr;
    auto flush = [&] {
      for (int64_t i = 0; i < 2 * n; ++i) {
        tw[i] += static_cast<double>(pw[i]);
        pw[i] = T(0);
      }
    };
    const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * n;
      const T* gr = g + r * n;
      const T m = mean[r], rs = rstd[r];
      auto xhat = [&]<class V>(int64_t k, V) { return (load<V>(xr + k) - V(m)) * V(rs); };
      auto gy = [&]<class V>(int64_t k, V) {
        return w ? load<V>(gr + k) * load<V>(w + k) : load<V>(gr + k);
      };
      if (cols) {
        add_column_sums(pw, pb, gr, xhat, n);
        if ((r - r0) % kFlush == kFlush - 1) flush();
      }
      if (gx) layer_norm_gx_row(gx + r * n, gy, xhat, rs, n);
    }
    if (cols) flush();
  }
  if (cols) sum_thread_columns(total, threads, gw, gb, n);
}

struct LayerNormSaved {
  Tensor x, weight, mean, rstd;
};

// layer_norm's argument errors: x must end with the normalized shape ns, weight and bias have it.
void check_layer_norm(const Tensor& x, const Shape& ns, const Tensor& weight, const Tensor& bias) {
  int64_t k = ns.size();
  bool fits = k > 0 && x.dim() >= k;
  for (int64_t i = 0; fits && i < k; ++i) fits = x.shape()[x.dim() - k + i] == ns[i];
  if (!fits)
    fail<ShapeError>("layer_norm: input {} does not end with the normalized shape {}", x.shape(),
                     ns);
  if (weight.defined() && !(weight.shape() == ns))
    fail<ShapeError>("layer_norm: weight {} does not match the normalized shape {}", weight.shape(),
                     ns);
  if (bias.defined() && !(bias.shape() == ns))
    fail<ShapeError>("layer_norm: bias {} does not match the normalized shape {}", bias.shape(),
                     ns);
  if (!is_floating(x.dtype()))
    fail<DtypeError>("layer_norm: expected a float tensor, got {}", dtype_name(x.dtype()));
}

// xhat and rstd over `axes` recomputed with differentiable ops, so that the rules differentiate
// exactly.
auto layer_norm_normalized(std::vector<int64_t> axes, double eps) {
  return [axes = std::move(axes), eps](const Tensor& x_in) {
    Tensor x = x_in.dtype() == bfloat16 ? x_in.to(float32) : x_in;  // as the forward computes
    Tensor xc = sub(x, mean(x, axes, true));
    Tensor rstd = rsqrt(add(mean(mul(xc, xc), axes, true), eps));
    return std::pair{mul(xc, rstd), rstd};
  };
}

// The recorded backward: normalized over `axes`, weight and bias gradients summed over `lead`.
template <class Normalized>
auto layer_norm_backward(std::vector<int64_t> axes, std::vector<int64_t> lead,
                         Normalized normalized) {
  return [axes = std::move(axes), lead = std::move(lead), normalized](
             const LayerNormSaved& s, const Tensor& g, const Node& node) -> TensorList {
    auto [xhat, rstd] = normalized(s.x);
    Tensor gw = s.weight.defined() ? mul(g, s.weight) : g;
    Tensor gx, gwt, gb;
    if (node.needs_input_grad(0))
      gx =
          mul(rstd, sub(sub(gw, mean(gw, axes, true)), mul(xhat, mean(mul(gw, xhat), axes, true))));
    if (node.needs_input_grad(1)) gwt = lead.empty() ? mul(g, xhat) : sum(mul(g, xhat), lead);
    if (node.needs_input_grad(2)) gb = lead.empty() ? g : sum(g, lead);
    return {gx, gwt, gb};
  };
}

// d out = d xhat * w + xhat * dw + db, d xhat = rstd (dx - mean(dx) - xhat mean(dx xhat))
template <class Normalized>
auto layer_norm_jvp(std::vector<int64_t> axes, Normalized normalized) {
  return [axes = std::move(axes), normalized](const LayerNormSaved& s, const TensorList& t) {
    auto [xhat, rstd] = normalized(s.x);
    Tensor r;
    if (t[0].defined()) {
      Tensor dxhat = mul(rstd, sub(sub(t[0], mean(t[0], axes, true)),
                                   mul(xhat, mean(mul(t[0], xhat), axes, true))));
      r = s.weight.defined() ? mul(dxhat, s.weight) : dxhat;
    }
    if (t[1].defined()) r = r.defined() ? add(r, mul(xhat, t[1])) : mul(xhat, t[1]);
    if (t[2].defined()) r = r.defined() ? add(r, t[2]) : t[2];
    return r;
  };
}

// The fused backward: one pass from the saved statistics (layer_norm_backward_rows).
auto layer_norm_fused_backward(const Shape& ns) {
  return [ns](const LayerNormSaved& s, const Tensor& g, const Node& node) -> TensorList {
    Tensor x = kernels::in_compute(s.x);  // statistics and weights are in the compute dtype
    Dtype d = x.dtype();
    Tensor gc = kernels::cast(g, d).contiguous();
    Tensor gx, gwt, gb;
    if (node.needs_input_grad(0)) gx = Tensor::empty(s.x.shape(), d);
    if (node.needs_input_grad(1)) gwt = Tensor::empty(ns, d);
    if (node.needs_input_grad(2)) gb = Tensor::empty(ns, d);
    int64_t n = ns.numel(), rows = n ? s.x.numel() / n : 0;
    kernels::dispatch_floating(d, "layer_norm", [&]<class T>() {
      auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
      layer_norm_backward_rows<T>(x.data<T>(), gc.data<T>(), ptr(s.weight), s.mean.data<T>(),
                                  s.rstd.data<T>(), ptr(gx), ptr(gwt), ptr(gb), rows, n);
    });
    return {gx, gwt, gb};
  };
}

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Shape& ns, const Tensor& weight, const Tensor& bias,
                  double eps) {
  check_layer_norm(x_in, ns, weight, bias);
  int64_t k = ns.size();
  // x is saved as stored; a bfloat16 x is normalized in float32 (weights and statistics too).
  Dtype d = kernels::compute_dtype(x_in.dtype());
  Tensor x = x_in.contiguous(), xc = kernels::in_compute(x);
  Tensor w = weight.defined() ? weight.to(d).contiguous() : Tensor();
  Tensor b = bias.defined() ? bias.to(d).contiguous() : Tensor();
  int64_t n = ns.numel(), rows = n ? x.numel() / n : 0;
  Tensor out = Tensor::empty(x.shape(), d);
  Shape stat_shape(x.shape().begin(), x.shape().end() - k);
  Tensor mean_t = Tensor::empty(stat_shape, d), rstd_t = Tensor::empty(stat_shape, d);
  kernels::dispatch_floating(d, "layer_norm", [&]<class T>() {
    layer_norm_rows<T>(xc.data<T>(), w.defined() ? w.data<T>() : nullptr,
                       b.defined() ? b.data<T>() : nullptr, out.data<T>(), mean_t.data<T>(),
                       rstd_t.data<T>(), rows, n, eps);
  });
  out = kernels::to_storage(out, x_in.dtype());
  if (needs_derivatives({&x, &w, &b})) {
    std::vector<int64_t> axes, lead;
    for (int64_t i = 0; i < k; ++i) axes.push_back(x.dim() - k + i);
    for (int64_t i = 0; i < x.dim() - k; ++i) lead.push_back(i);
    auto normalized = layer_norm_normalized(axes, eps);
    record(op("layer_norm", layer_norm, x, ns, w, b, eps), out,
           LayerNormSaved{x, w, mean_t, rstd_t},
           Rules{.backward = layer_norm_backward(axes, lead, normalized),
                 .jvp = layer_norm_jvp(axes, normalized),
                 .fused_backward = layer_norm_fused_backward(ns)});
  }
  return out;
}

namespace {
// [1, C, 1, ...] for x [N, C, ...]: a per-channel tensor that broadcasts along x.
Shape channel_shape(const Tensor& x) {
  Shape s(std::vector<int64_t>(size_t(x.dim()), 1));
  s[1] = x.size(1);
  return s;
}

void check_channel_tensor(const char* op, const char* what, const Tensor& t, const Tensor& x) {
  if (t.defined() && !(t.dim() == 1 && t.size(0) == x.size(1)))
    fail<ShapeError>("{}: {} {} must be [{}], one value per channel of the input {}", op, what,
                     t.shape(), x.size(1), x.shape());
}

Tensor channel_affine(const Tensor& y, const Tensor& weight, const Tensor& bias) {
  Tensor out = y;
  if (weight.defined()) out = mul(out, reshape(weight.to(y.dtype()), channel_shape(y)));
  if (bias.defined()) out = add(out, reshape(bias.to(y.dtype()), channel_shape(y)));
  return out;
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  if (x.dim() < 2) fail<ShapeError>("batch_norm: expected an input [N, C, ...], got {}", x.shape());
  if (!is_floating(x.dtype()))
    fail<DtypeError>("batch_norm: expected a float tensor, got {}", dtype_name(x.dtype()));
  check_channel_tensor("batch_norm", "running_mean", running_mean, x);
  check_channel_tensor("batch_norm", "running_var", running_var, x);
  check_channel_tensor("batch_norm", "weight", weight, x);
  check_channel_tensor("batch_norm", "bias", bias, x);
  std::vector<int64_t> axes{0};
  for (int64_t i = 2; i < x.dim(); ++i) axes.push_back(i);
  const Shape cs = channel_shape(x);
  const int64_t n = x.size(1) ? x.numel() / x.size(1) : 0;
  Tensor y;
  if (training) {
    if (n <= 1)
      fail<ValueError>("batch_norm: training needs more than one value per channel, input {}",
                       x.shape());
    Tensor mu = mean(x, axes, true);
    Tensor xc = sub(x, mu);
    Tensor var = mean(mul(xc, xc), axes, true);
    y = mul(xc, rsqrt(add(var, eps)));
    NoGradGuard no_grad;
    if (running_mean.defined()) {
      Tensor m = reshape(mu.detach(), {x.size(1)}).to(running_mean.dtype());
      Tensor rm = running_mean;
      rm.mul_(1.0 - momentum).add_(m, momentum);
    }
    if (running_var.defined()) {
      Tensor v = reshape(var.detach(), {x.size(1)}).to(running_var.dtype());
      Tensor rv = running_var;
      rv.mul_(1.0 - momentum).add_(v, momentum * double(n) / double(n - 1));
    }
  } else {
    if (!running_mean.defined() || !running_var.defined())
      fail<ValueError>("batch_norm: evaluation needs running_mean and running_var (input {})",
                       x.shape());
    Tensor mu = reshape(running_mean.detach().to(x.dtype()), cs);
    Tensor var = reshape(running_var.detach().to(x.dtype()), cs);
    y = mul(sub(x, mu), rsqrt(add(var, eps)));
  }
  return channel_affine(y, weight, bias);
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias,
                  double eps) {
  if (x.dim() < 2) fail<ShapeError>("group_norm: expected an input [N, C, ...], got {}", x.shape());
  if (num_groups < 1 || x.size(1) % num_groups != 0)
    fail<ShapeError>("group_norm: {} groups do not divide the {} channels of the input {}",
                     num_groups, x.size(1), x.shape());
  check_channel_tensor("group_norm", "weight", weight, x);
  check_channel_tensor("group_norm", "bias", bias, x);
  const int64_t N = x.size(0), per_group = N && num_groups ? x.numel() / (N * num_groups) : 0;
  if (per_group == 0)
    fail<ShapeError>("group_norm: input {} has no values to normalise", x.shape());
  Tensor y =
      layer_norm(reshape(x, {N, num_groups, per_group}), {per_group}, Tensor(), Tensor(), eps);
  return channel_affine(reshape(y, x.shape()), weight, bias);
}

}  // namespace ag
