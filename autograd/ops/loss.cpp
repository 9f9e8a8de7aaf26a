#include "autograd/ops/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
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

enum class Reduction { mean, sum, none };

Reduction parse_reduction(std::string_view r, const char* op) {
  if (r == "mean") return Reduction::mean;
  if (r == "sum") return Reduction::sum;
  if (r == "none") return Reduction::none;
  fail<ValueError>("{}: reduction must be 'mean', 'sum' or 'none', got '{}'", op, r);
}

const char* reduction_name(Reduction r) {
  return r == Reduction::mean ? "mean" : (r == Reduction::sum ? "sum" : "none");
}

// logits: float, [N, C] or [C] with C > 0.
void check_logits(const Tensor& logits, const char* op) {
  if (!is_floating(logits.dtype()))
    fail<DtypeError>("{}: logits must be float32 or float64, got {} of shape {}", op,
                     dtype_name(logits.dtype()), logits.shape());
  if (logits.dim() != 1 && logits.dim() != 2)
    fail<ShapeError>("{}: logits must be [N, C] or [C], got {}", op, logits.shape());
  if (logits.shape().back() == 0)
    fail<ShapeError>("{}: logits {} have no classes", op, logits.shape());
}

// A "mean" over no rows at all is 0 / 0: refuse it rather than return NaN into a training loop.
void check_not_empty(const Tensor& logits, Reduction r, const char* op) {
  if (r == Reduction::mean && logits.dim() == 2 && logits.shape()[0] == 0)
    fail<ValueError>("{}: empty batch (logits {}) with reduction 'mean'; use 'sum' or 'none'", op,
                     logits.shape());
}

// Float targets must be numbers: a NaN target would make every gradient NaN.
void check_no_nan_target(const Tensor& target, const char* op) {
  Tensor t = kernels::in_compute(target.detach()).contiguous();
  kernels::dispatch_floating(t.dtype(), op, [&]<class T>() {
    const T* p = t.data<T>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i)
      if (std::isnan(p[i]))
        fail<ValueError>("{}: target of shape {} holds NaN at element {}", op, t.shape(), i);
  });
}

void check_smoothing(double eps, const char* op) {
  if (!(eps >= 0 && eps <= 1))
    fail<ValueError>("{}: label_smoothing must be in [0, 1], got {}", op, eps);
}

// Row i of the contiguous logits x [rows, c] in the compute type T: in place, or for bfloat16
// logits widened into a per-thread buffer (so no float32 copy of the whole logits is made).
template <class T>
const T* compute_row(const Tensor& x, int64_t i, int64_t c) {
  if constexpr (std::is_same_v<T, float>) {
    if (x.dtype() == bfloat16) {
      thread_local std::vector<float> buf;
      buf.resize(static_cast<size_t>(c));
      const bf16* p = x.data<bf16>() + i * c;
      for (int64_t j = 0; j < c; ++j) buf[static_cast<size_t>(j)] = float(p[j]);
      return buf.data();
    }
  }
  return x.data<T>() + i * c;
}

// A per-thread row of c values, for the float32 gradient of a bfloat16 row. (A thread_local
// declared in the per-row loop itself cost a TLS look-up per row, float32 rows included: with it,
// the backward of a [64, 10] cross-entropy took 2.8 us instead of 2.2, in a loop.)
template <class T>
T* half_row_buffer(int64_t c) {
  thread_local std::vector<T> buf;
  buf.resize(static_cast<size_t>(c));
  return buf.data();
}

// The shift the exponentials of a row are taken at: its max, or 0 for a row whose max is -inf,
// +inf or NaN (the unshifted sum then says so).
template <class T>
T row_shift(const T* row, int64_t c) {
  const T m = kernels::row_max(row, c);
  return std::isfinite(m) ? m : T(0);
}

// log(sum(exp(row))) of a contiguous row.
template <class T>
double row_logsumexp(const T* row, int64_t c) {
  const T m = row_shift(row, c);
  return static_cast<double>(m) + std::log(kernels::exp_shifted_sum(row, (T*)nullptr, c, m));
}

// One row's gradient, o = (softmax(row) - q) * scale with q = (1 - eps) onehot(t) + eps / c, and
// the row's log-sum-exp (row_logsumexp's value, from the same exponentials). An ignored row gets a
// zero gradient (row is not read).
template <class T>
double gradient_row(const T* row, T* o, int64_t c, int64_t t, bool ignored, T scale, double eps) {
  if (ignored) {
    std::fill_n(o, c, T(0));
    return 0;
  }
  const T m = row_shift(row, c);
  const double sum = kernels::exp_shifted_sum(row, o, c, m);
  const T inv = static_cast<T>(1.0 / sum), q = static_cast<T>(eps / static_cast<double>(c));
  for (int64_t j = 0; j < c; ++j) o[j] = (o[j] * inv - q) * scale;
  o[t] -= static_cast<T>(1 - eps) * scale;
  return static_cast<double>(m) + std::log(sum);
}

// cross_entropy's gradient in one pass over the logits x [rows, c]:
//   dx[i, j] = (softmax(x[i])[j] - q[i, j]) * g[i] * w[i],  q = (1 - eps) onehot(t) + eps / c
// (the composite formula of the backward below, without its five temporaries). g is 0-d or
// [rows]; w is zero on ignored rows. Not recorded: used when no graph of the backward is built.
Tensor cross_entropy_grad(const Tensor& logits, const Tensor& target, const Tensor& weight,
                          const Tensor& g, double eps, int64_t ignore_index) {
  // bfloat16 logits: each row widened and its gradient computed in float32, rounded into a
  // bfloat16 result.
  const Dtype d = kernels::compute_dtype(logits.dtype());
  const bool half = logits.dtype() == bfloat16;
  Tensor x = logits.contiguous(), w = weight.contiguous();
  Tensor gc = kernels::cast(g, d).contiguous();
  Tensor out = Tensor::empty(x.shape(), logits.dtype());
  const int64_t c = x.shape().back(), rows = x.numel() / c;
  const int64_t* tv = target.data<int64_t>();
  kernels::dispatch_floating(d, "cross_entropy", [&]<class T>() {
    const T* pw = w.data<T>();
    const T* pg = gc.data<T>();
    const bool g_scalar = gc.numel() == 1;
    T* po = half ? nullptr : out.data<T>();
    kernels::parallel_for(rows, rows * c > (1 << 16), [&](int64_t i) {
      const T* row = compute_row<T>(x, i, c);
      T* o = half ? half_row_buffer<T>(c) : po + i * c;
      gradient_row(row, o, c, tv[i], tv[i] == ignore_index, (g_scalar ? pg[0] : pg[i]) * pw[i],
                   eps);
      if constexpr (std::is_same_v<T, float>)
        if (half) {
          bf16* dst = out.data<bf16>() + i * c;
          for (int64_t j = 0; j < c; ++j) dst[j] = bf16(o[j]);
        }
    });
  });
  return out;
}

// The (smoothed) one-hot target rows q = (1 - eps) onehot(t) + eps / C; ignored rows are zero.
// A constant (not differentiable): built with a loop.
Tensor smoothed_one_hot(const Tensor& target, int64_t c, double eps, int64_t ignore_index,
                        Dtype dtype, const Shape& shape) {
  Tensor q = full(shape, eps / static_cast<double>(c), dtype);
  const int64_t* t = target.data<int64_t>();
  kernels::dispatch_floating(dtype, "cross_entropy", [&]<class T>() {
    T* p = q.data<T>();
    for (int64_t i = 0; i < target.numel(); ++i) {
      if (t[i] == ignore_index)
        std::fill_n(p + i * c, c, T(0));
      else
        p[i * c + t[i]] += static_cast<T>(1 - eps);
    }
  });
  return q;
}

// out (0-d) = the per-row losses summed (sum) or averaged over count (mean), in double.
void reduce_rows(const Tensor& out, const Tensor& losses, Reduction r, double count) {
  kernels::dispatch_floating(losses.dtype(), "cross_entropy", [&]<class T>() {
    const T* p = losses.data<T>();
    double total = 0;
    for (int64_t i = 0, n = losses.numel(); i < n; ++i) total += static_cast<double>(p[i]);
    *out.data<T>() = static_cast<T>(r == Reduction::mean ? total / count : total);
  });
}

}  // namespace

namespace {

struct CrossEntropySaved {
  // grad: the gradient for an output gradient of 1, computed by the forward (small logits only,
  // see kGradInForward); undefined otherwise.
  Tensor logits, target, weight, grad;
};

// Logits of at most this many elements get their gradient computed in the forward, from the
// exponentials the loss computes anyway, while the row is in cache; the backward then only scales
// it (mlp784's [64, 10] logits: the backward's second pass over them, its exponentials included,
// cost about 2 us of the step, docs/performance.md). It costs a buffer the size of the logits,
// so large logits (a language model's vocabulary) are gone over again in the backward instead.
constexpr int64_t kGradInForward = int64_t(1) << 16;

// The number of targets tv[0..rows) that are not ignore_index; IndexError for one outside [0, c).
int64_t count_targets(const char* op, const int64_t* tv, int64_t rows, int64_t c,
                      int64_t ignore_index, const Shape& logits_shape) {
  int64_t count = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (tv[i] == ignore_index) continue;
    if (tv[i] < 0 || tv[i] >= c)
      fail<IndexError>("{}: target {} at row {} is outside [0, {}) for logits {}", op, tv[i], i, c,
                       logits_shape);
    ++count;
  }
  return count;
}

// Forward, per row of x [rows, c]: loss = lse - (1 - eps) x[t] - eps / C sum_j x_j (0 for ignored
// rows), and the backward weight: 0 for ignored rows, 1 / count for mean (0 / 0 = NaN loss when
// every row is ignored, as in PyTorch; the gradient is then zero), 1 otherwise. When `grad` is
// defined (x's dtype, x's shape), also the gradient for an output gradient of 1: each row's
// gradient_row scaled by its weight.
void cross_entropy_rows(const char* op, const Tensor& x, int64_t rows, int64_t c, const int64_t* tv,
                        const Tensor& losses, const Tensor& weight, const Tensor& grad, double eps,
                        int64_t ignore_index, bool mean, int64_t count) {
  kernels::dispatch_floating(kernels::compute_dtype(x.dtype()), op, [&]<class T>() {
    T* pl = losses.data<T>();
    T* pw = weight.data<T>();
    T* pg = grad.defined() ? grad.data<T>() : nullptr;
    kernels::parallel_for(rows, rows * c > (1 << 16), [&](int64_t i) {
      const bool ignored = tv[i] == ignore_index;
      pw[i] = ignored ? T(0) : static_cast<T>(mean ? 1.0 / static_cast<double>(count) : 1.0);
      const T* row = ignored ? nullptr : compute_row<T>(x, i, c);
      const double lse = pg ? gradient_row(row, pg + i * c, c, tv[i], ignored, pw[i], eps)
                            : (ignored ? 0.0 : row_logsumexp(row, c));
      if (ignored) {
        pl[i] = T(0);
        return;
      }
      double row_sum = 0;
      if (eps > 0)
        for (int64_t j = 0; j < c; ++j) row_sum += static_cast<double>(row[j]);
      double picked = static_cast<double>(row[tv[i]]);
      pl[i] = static_cast<T>(lse - (1 - eps) * picked - eps / static_cast<double>(c) * row_sum);
    });
  });
}

// The gradient computed by the forward (for an output gradient of 1) times the output gradient g
// (0-d, or one per row for reduction "none"); the gradient itself when g is 1.
Tensor scale_saved_grad(const Tensor& grad, const Tensor& g) {
  if (g.numel() == 1) return g.item<double>() == 1.0 ? grad : mul(grad, g.reshape({}));
  return mul(grad, unsqueeze(g, 1));
}

// cross_entropy's rules: d loss_i / dx_i = (softmax(x_i) - q_i) * w_i, per row.
auto cross_entropy_rules(int64_t c, double eps, int64_t ignore_index, bool batched, Reduction red) {
  using Saved = CrossEntropySaved;
  auto derivative = [c, eps, ignore_index](const Saved& s) {
    Tensor q = smoothed_one_hot(s.target, c, eps, ignore_index,
                                kernels::compute_dtype(s.logits.dtype()), s.logits.shape());
    return sub(softmax(s.logits, -1), q);
  };
  return Rules{
      .backward = [derivative, batched](const Saved& s, const Tensor& g) -> TensorList {
        Tensor scale = mul(g, s.weight);
        if (batched) scale = unsqueeze(scale, 1);
        return {mul(derivative(s), scale)};
      },
      .jvp =
          [derivative, red](const Saved& s, const TensorList& tx) {
            // Per row, weighted: 0 for ignored rows, 1 / count for mean, else 1.
            Tensor rows = mul(sum(mul(derivative(s), tx[0]), {-1}), s.weight);
            return red == Reduction::none ? rows : sum(rows);
          },
      .fused_backward = [eps, ignore_index](const Saved& s, const Tensor& g) -> TensorList {
        if (s.grad.defined()) return moved_list(scale_saved_grad(s.grad, g));
        return moved_list(cross_entropy_grad(s.logits, s.target, s.weight, g, eps, ignore_index));
      }};
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, std::string_view reduction,
                     int64_t ignore_index, double label_smoothing) {
  const char* op = "cross_entropy";
  check_logits(logits, op);
  if (target.dtype() != int64)
    fail<DtypeError>(
        "{}: targets must be int64 class indices, got {} (use cross_entropy_soft for "
        "probabilities)",
        op, dtype_name(target.dtype()));
  const bool batched = logits.dim() == 2;
  const int64_t rows = batched ? logits.shape()[0] : 1, c = logits.shape().back();
  const Shape row_shape = batched ? Shape{rows} : Shape{};
  if (!(target.shape() == row_shape))
    fail<ShapeError>("{}: logits {} need targets of shape {}, got {}", op, logits.shape(),
                     row_shape, target.shape());
  const Reduction red = parse_reduction(reduction, op);
  check_smoothing(label_smoothing, op);
  check_not_empty(logits, red, op);

  Tensor t = target.contiguous();
  const int64_t* tv = t.data<int64_t>();
  const int64_t count = count_targets(op, tv, rows, c, ignore_index, logits.shape());
  // bfloat16 logits: computed in float32 a row at a time (compute_row), and the loss is float32.
  const Dtype d = kernels::compute_dtype(logits.dtype());
  Tensor x = logits.is_contiguous() ? logits : logits.detach().contiguous();
  Tensor losses = Tensor::empty(row_shape, d), weight = Tensor::empty(row_shape, d);
  Tensor out = red == Reduction::none ? losses : Tensor::empty(Shape{}, d);
  // The gradient too, when a backward will want it and the logits are small (kGradInForward).
  Tensor grad =
      logits.dtype() == d && logits.numel() <= kGradInForward && any_requires_grad({&logits})
          ? Tensor::empty(x.shape(), d)
          : Tensor();
  const double eps = label_smoothing;
  auto kernel = [&] {
    cross_entropy_rows(op, x, rows, c, tv, losses, weight, grad, eps, ignore_index,
                       red == Reduction::mean, count);
    if (red != Reduction::none) reduce_rows(out, losses, red, static_cast<double>(count));
  };
  if (!needs_derivatives({&logits})) {
    kernel();
    return out;
  }
  record_around(ag::op(op, cross_entropy, logits, Const{t}, reduction_name(red), ignore_index, eps),
                out, CrossEntropySaved{logits, t, weight, grad},
                cross_entropy_rules(c, eps, ignore_index, batched, red), kernel);
  return out;
}

namespace {

struct SoftSaved {
  Tensor logits, probs;
};

// Per row of x [rows, c]: loss = sum_j q'_j (lse - x_j), q' = (1 - eps) q + eps / C. Terms with
// q'_j = 0 are skipped, so a logit of -inf where the target has no mass does not make the loss NaN.
void cross_entropy_soft_rows(const char* op, const Tensor& x, const Tensor& q, int64_t rows,
                             int64_t c, const Tensor& losses, double eps) {
  kernels::dispatch_floating(x.dtype(), op, [&]<class T>() {
    const T* px = x.data<T>();
    const T* pq = q.data<T>();
    T* pl = losses.data<T>();
    kernels::parallel_for(rows, rows * c > (1 << 16), [&](int64_t i) {
      const T* row = px + i * c;
      double lse = row_logsumexp(row, c), loss = 0;
      for (int64_t j = 0; j < c; ++j) {
        double qj = (1 - eps) * static_cast<double>(pq[i * c + j]) + eps / static_cast<double>(c);
        if (qj != 0) loss += qj * (lse - static_cast<double>(row[j]));
      }
      pl[i] = static_cast<T>(loss);
    });
  });
}

// cross_entropy_soft's rules: d/dx = (softmax(x) sum_j q'_j - q') * g,
// d/dq = (1 - eps) (-log_softmax(x)) * g (g divided by N for mean); the JVP is sum over classes
// of d/dx tx + d/dq tq, reduced like the loss.
auto cross_entropy_soft_rules(int64_t rows, int64_t c, double eps, bool batched, Reduction red) {
  using Saved = SoftSaved;
  auto smoothed = [eps, c](const Tensor& q) {
    return eps != 0 ? add(mul(q, 1 - eps), eps / static_cast<double>(c)) : q;
  };
  auto dx = [smoothed](const Saved& s) {
    Tensor qs = smoothed(s.probs);
    return sub(mul(softmax(s.logits, -1), sum(qs, {-1}, /*keepdim=*/true)), qs);
  };
  auto dq = [eps](const Saved& s) { return mul(neg(log_softmax(s.logits, -1)), 1 - eps); };
  return Rules{
      .backward = [rows, red, batched, dx, dq](const Saved& s, const Tensor& g,
                                               const Node& n) -> TensorList {
        Tensor scale = red == Reduction::mean ? mul(g, 1.0 / static_cast<double>(rows)) : g;
        if (batched && red == Reduction::none) scale = unsqueeze(scale, 1);
        return {n.needs_input_grad(0) ? mul(dx(s), scale) : Tensor(),
                n.needs_input_grad(1) ? mul(dq(s), scale) : Tensor()};
      },
      .jvp =
          [rows, red, dx, dq](const Saved& s, const TensorList& t) {
            Tensor per;
            if (t[0].defined()) per = mul(dx(s), t[0]);
            if (t[1].defined()) per = per.defined() ? add(per, mul(dq(s), t[1])) : mul(dq(s), t[1]);
            Tensor row = sum(per, {-1});
            if (red == Reduction::none) return row;
            Tensor total = sum(row);
            return red == Reduction::mean ? mul(total, 1.0 / static_cast<double>(rows)) : total;
          }};
}

}  // namespace

Tensor cross_entropy_soft(const Tensor& logits, const Tensor& target_probs,
                          std::string_view reduction, double label_smoothing) {
  const char* op = "cross_entropy_soft";
  check_logits(logits, op);
  if (logits.dtype() == bfloat16 || target_probs.dtype() == bfloat16) {  // in float32
    auto up = [](const Tensor& t) { return t.dtype() == bfloat16 ? t.to(float32) : t; };
    return cross_entropy_soft(up(logits), up(target_probs), reduction, label_smoothing);
  }
  if (!is_floating(target_probs.dtype()))
    fail<DtypeError>("{}: target probabilities must be float32 or float64, got {}", op,
                     dtype_name(target_probs.dtype()));
  if (!(target_probs.shape() == logits.shape()))
    fail<ShapeError>("{}: target {} does not match logits {}", op, target_probs.shape(),
                     logits.shape());
  const Reduction red = parse_reduction(reduction, op);
  check_smoothing(label_smoothing, op);
  check_not_empty(logits, red, op);
  check_no_nan_target(target_probs, op);
  const Dtype d = logits.dtype();
  const Tensor probs = target_probs.dtype() == d ? target_probs : target_probs.to(d);
  const bool batched = logits.dim() == 2;
  const int64_t rows = batched ? logits.shape()[0] : 1, c = logits.shape().back();
  const double eps = label_smoothing;

  Tensor x = logits.detach().contiguous(), q = probs.detach().contiguous();
  Tensor losses = Tensor::empty(batched ? Shape{rows} : Shape{}, d);
  cross_entropy_soft_rows(op, x, q, rows, c, losses, eps);
  Tensor out = losses;
  if (red != Reduction::none) {
    out = Tensor::empty(Shape{}, d);
    reduce_rows(out, losses, red, static_cast<double>(rows));
  }

  if (needs_derivatives({&logits, &probs}))
    record(ag::op(op, cross_entropy_soft, logits, probs, reduction_name(red), eps), out,
           SoftSaved{logits, probs}, cross_entropy_soft_rules(rows, c, eps, batched, red));
  return out;
}

}  // namespace ag
