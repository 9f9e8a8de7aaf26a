#include "autograd/ops/conv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/ranges.h>

#include "autograd/kernels/bf16.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/gemm.h"
#include "autograd/kernels/rows.h"
#include "autograd/op.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/index.h"
#include "autograd/ops/shape.h"

namespace ag {

ConvPadding::ConvPadding(const std::string& mode) {
  if (mode == "same")
    same = true;
  else if (mode != "valid")
    fail<ValueError>("conv: padding must be a size, \"same\" or \"valid\", got \"{}\"", mode);
}
ConvPadding::ConvPadding(const char* mode) : ConvPadding(std::string(mode ? mode : "")) {}

namespace {

// Stride, padding, dilation and groups of one convolution.
struct Params {
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;
};

// Every size of one convolution: input [N, C, H, W], weight [K, C/G, kh, kw], output [N, K, OH,
// OW].
struct Geom {
  int64_t N, C, H, W, K, kh, kw, OH, OW;
  Params p;
  int64_t Cg() const { return C / p.groups; }
  int64_t Kg() const { return K / p.groups; }
  int64_t R() const { return Cg() * kh * kw; }  // rows of one group's unrolled input
  int64_t P() const { return OH * OW; }         // output positions per channel
  // A 1x1 kernel with stride 1 and no padding: the input already is its unrolled form.
  bool pointwise() const {
    return kh == 1 && kw == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0;
  }
};

int64_t out_size(int64_t in, int64_t pad, int64_t dil, int64_t k, int64_t stride) {
  return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

// The geometry of K kernels of kh x kw over an [N, C, H, W] input, output size included.
Geom make_geom(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t kh, int64_t kw,
               const Params& p) {
  return {
      N, C, H, W, K, kh, kw, out_size(H, p.ph, p.dh, kh, p.sh), out_size(W, p.pw, p.dw, kw, p.sw),
      p};
}

int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

// Output columns j whose input column j*s - p + v*d falls inside [0, W): [lo, hi).
inline std::pair<int64_t, int64_t> valid_range(int64_t W, int64_t OW, int64_t s, int64_t p,
                                               int64_t off) {
  int64_t lo = std::clamp<int64_t>(ceil_div(p - off, s), 0, OW);
  int64_t hi = std::clamp<int64_t>(ceil_div(W + p - off, s), lo, OW);
  return {lo, hi};
}

// Output rows i whose input row i - ph + off (stride 1) falls inside [0, H): [lo, hi).
inline std::pair<int64_t, int64_t> valid_rows(int64_t H, int64_t OH, int64_t ph, int64_t off) {
  const int64_t lo = std::clamp<int64_t>(ph - off, 0, OH);
  return {lo, std::clamp<int64_t>(H + ph - off, lo, OH)};
}

// With stride 1 and an output as wide as the input (padding "same"), a kernel offset's whole block
// of valid rows is one contiguous run in both the input and the unrolled row; only the columns
// that wrap around into the padding need fixing.
bool contiguous_rows(const Geom& g) { return g.p.sh == 1 && g.p.sw == 1 && g.OW == g.W; }

// x: one sample's group of channels [C/G, H, W] -> col [C/G * kh * kw, OH * OW] (zeros where the
// receptive field reaches into the padding). Rows are short (an image's width): they are copied and
// zeroed with the short-row helpers of kernels/rows.h, not std::fill (a memset call per row).
template <class T>
void im2col(const T* x, const Geom& g, T* col) {
  const int64_t P = g.P(), OW = g.OW, OH = g.OH, H = g.H, W = g.W, sw = g.p.sw;
  const bool runs = contiguous_rows(g);
  for (int64_t c = 0; c < g.Cg(); ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v) {
        T* row = col + ((c * g.kh + u) * g.kw + v) * P;
        const auto [lo, hi] = valid_range(W, OW, sw, g.p.pw, v * g.p.dw);
        const T* xc = x + c * H * W - g.p.pw + v * g.p.dw;
        if (runs) {
          const auto [i0, i1] = valid_rows(H, OH, g.p.ph, u * g.p.dh);
          if (i1 <= i0 || hi <= lo) {  // the offset sees only padding
            kernels::zero_row(row, P);
            continue;
          }
          // Rows i0..i1-1 in one copy, then the wrapped-around columns back to zero.
          kernels::zero_row(row, i0 * OW + lo);
          const T* xr = xc + (i0 - g.p.ph + u * g.p.dh) * W;
          kernels::copy_row(row + i0 * OW + lo, xr + lo, (i1 - 1 - i0) * OW + hi - lo);
          for (int64_t i = i0; i + 1 < i1; ++i) kernels::zero_row(row + i * OW + hi, OW - hi + lo);
          const int64_t tail = (i1 - 1) * OW + hi;
          kernels::zero_row(row + tail, P - tail);
          continue;
        }
        for (int64_t i = 0; i < OH; ++i) {
          T* r = row + i * OW;
          const int64_t ih = i * g.p.sh - g.p.ph + u * g.p.dh;
          if (ih < 0 || ih >= H) {
            kernels::zero_row(r, OW);
            continue;
          }
          const T* xr = xc + ih * W;
          kernels::zero_row(r, lo);
          if (sw == 1) {
            kernels::copy_row(r + lo, xr + lo, hi - lo);
          } else {
            for (int64_t j = lo; j < hi; ++j) r[j] = xr[j * sw];
          }
          kernels::zero_row(r + hi, OW - hi);
        }
      }
}

// The adjoint of im2col: adds col [C/G * kh * kw, OH * OW] back into x [C/G, H, W]. col is
// scratch: the entries that fall into the padding may be overwritten with zeros.
template <class T>
void col2im(T* col, const Geom& g, T* x) {
  const int64_t P = g.P(), OW = g.OW, OH = g.OH, H = g.H, W = g.W, sw = g.p.sw;
  const bool runs = contiguous_rows(g);
  for (int64_t c = 0; c < g.Cg(); ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v) {
        T* row = col + ((c * g.kh + u) * g.kw + v) * P;
        const auto [lo, hi] = valid_range(W, OW, sw, g.p.pw, v * g.p.dw);
        T* xc = x + c * H * W - g.p.pw + v * g.p.dw;
        if (runs) {
          // As in im2col: zero the wrapped-around columns, then one addition over the run.
          const auto [i0, i1] = valid_rows(H, OH, g.p.ph, u * g.p.dh);
          if (i1 <= i0 || hi <= lo) continue;
          for (int64_t i = i0; i + 1 < i1; ++i) kernels::zero_row(row + i * OW + hi, OW - hi + lo);
          T* xr = xc + (i0 - g.p.ph + u * g.p.dh) * W;
          kernels::add_row(xr + lo, row + i0 * OW + lo, (i1 - 1 - i0) * OW + hi - lo);
          continue;
        }
        for (int64_t i = 0; i < OH; ++i) {
          const int64_t ih = i * g.p.sh - g.p.ph + u * g.p.dh;
          if (ih < 0 || ih >= H) continue;
          const T* r = row + i * OW;
          T* xr = xc + ih * W;
          if (sw == 1) {
            kernels::add_row(xr + lo, r + lo, hi - lo);
          } else {
            for (int64_t j = lo; j < hi; ++j) xr[j * sw] += r[j];
          }
        }
      }
}

// Scratch of n elements for one thread, not initialised. Up to kKeptScratch bytes it is a
// per-thread buffer kept between calls (the convolutions of a training step ask for the same sizes
// every step); larger requests get a buffer of their own in `own`, freed by the caller, so that one
// large convolution does not pin its memory for the rest of the process.
constexpr int64_t kKeptScratch = int64_t(16) << 20;
template <class T>
T* scratch(int64_t n, std::unique_ptr<T[]>& own) {
  if (n * int64_t(sizeof(T)) > kKeptScratch) {
    own.reset(new T[size_t(n)]);
    return own.get();
  }
  thread_local std::vector<T> buffer;
  if (int64_t(buffer.size()) < n) {
    buffer.clear();
    buffer.shrink_to_fit();
    buffer.resize(size_t(n));
  }
  return buffer.data();
}

// Threads for a loop over n samples: one per sample at most, one inside a parallel region.
int sample_threads(int64_t n, int64_t work) {
  if (omp_in_parallel() || n < 2 || work < (int64_t(1) << 15)) return 1;
  return int(std::min<int64_t>(omp_get_max_threads(), n));
}

// Runs f(n, col, thread) for every sample, spread over `threads` threads, each with its own
// scratch buffer `col` of col_size elements. With one thread, BLAS may thread each GEMM itself.
template <class T, class F>
void for_each_sample(int64_t N, int64_t col_size, int threads, F&& f) {
#pragma omp parallel num_threads(threads)
  {
    std::unique_ptr<T[]> own;
    T* col = scratch<T>(std::max<int64_t>(col_size, 1), own);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) f(n, col, omp_get_thread_num());
  }
}

// out [N, K, OH, OW] = conv(x [N, C, H, W], w [K, C/G, kh, kw]).
template <class T>
void conv_forward_kernel(const T* x, const T* w, T* out, const Geom& g) {
  const int64_t R = g.R(), P = g.P(), Kg = g.Kg(), Cg = g.Cg();
  const int threads = sample_threads(g.N, g.N * g.K * R * P);
  for_each_sample<T>(g.N, g.pointwise() ? 0 : R * P, threads, [&](int64_t n, T* col, int) {
    for (int64_t grp = 0; grp < g.p.groups; ++grp) {
      const T* xg = x + (n * g.C + grp * Cg) * g.H * g.W;
      if (!g.pointwise()) im2col(xg, g, col);
      kernels::gemm_call(false, false, Kg, P, R, w + grp * Kg * R, R, g.pointwise() ? xg : col, P,
                         false, out + (n * g.K + grp * Kg) * P, P);
    }
  });
}

// gx [N, C, H, W] = conv_transpose(gy [N, K, OH, OW], w): per group, col = w^T @ gy, then col2im.
template <class T>
void conv_input_kernel(const T* gy, const T* w, T* gx, const Geom& g) {
  const int64_t R = g.R(), P = g.P(), Kg = g.Kg(), Cg = g.Cg();
  std::fill(gx, gx + g.N * g.C * g.H * g.W, T(0));
  const int threads = sample_threads(g.N, g.N * g.K * R * P);
  for_each_sample<T>(g.N, R * P, threads, [&](int64_t n, T* col, int) {
    for (int64_t grp = 0; grp < g.p.groups; ++grp) {
      T* xg = gx + (n * g.C + grp * Cg) * g.H * g.W;
      T* dst = g.pointwise() ? xg : col;
      kernels::gemm_call(true, false, R, P, Kg, w + grp * Kg * R, R, gy + (n * g.K + grp * Kg) * P,
                         P, false, dst, P);
      if (!g.pointwise()) col2im(col, g, xg);
    }
  });
}

// gw [K, C/G, kh, kw] = sum over samples of gy [K/G, OH*OW] @ im2col(x)^T, per group. Each thread
// sums its samples into its own copy; the copies are added in thread order.
template <class T>
void conv_weight_kernel(const T* x, const T* gy, T* gw, const Geom& g) {
  const int64_t R = g.R(), P = g.P(), Kg = g.Kg(), Cg = g.Cg(), size = g.K * R;
  const int threads = sample_threads(g.N, g.N * g.K * R * P);
  std::vector<T> part(size_t(threads - 1) * size_t(size), T(0));
  std::fill(gw, gw + size, T(0));
  for_each_sample<T>(g.N, g.pointwise() ? 0 : R * P, threads, [&](int64_t n, T* col, int t) {
    T* acc = t == 0 ? gw : part.data() + (t - 1) * size;
    for (int64_t grp = 0; grp < g.p.groups; ++grp) {
      const T* xg = x + (n * g.C + grp * Cg) * g.H * g.W;
      if (!g.pointwise()) im2col(xg, g, col);
      kernels::gemm_call(false, true, Kg, R, P, gy + (n * g.K + grp * Kg) * P, P,
                         g.pointwise() ? xg : col, P, true, acc + grp * Kg * R, R);
    }
  });
  for (int t = 1; t < threads; ++t) {
    const T* src = part.data() + (t - 1) * size;
    for (int64_t i = 0; i < size; ++i) gw[i] += src[i];
  }
}

Tensor conv_forward(const Tensor& x, const Tensor& w, const Params& p);
Tensor conv_input(const Tensor& gy, const Tensor& w, const Params& p, int64_t H, int64_t W);
Tensor conv_weight(const Tensor& x, const Tensor& gy, const Params& p, int64_t kh, int64_t kw);

// Checks that a gradient-shaped tensor gy [N, K, OH, OW] is what a convolution of geometry g gives.
void check_out_shape(const char* op, const Tensor& gy, const Geom& g) {
  if (gy.dim() != 4 || gy.shape()[0] != g.N || gy.shape()[1] != g.K || gy.shape()[2] != g.OH ||
      gy.shape()[3] != g.OW)
    fail<ShapeError>("{}: gradient {} does not match the convolution output [{}, {}, {}, {}]", op,
                     gy.shape(), g.N, g.K, g.OH, g.OW);
}

// The recorded convolution; x and w already checked, same dtype.
Tensor conv_forward(const Tensor& x_in, const Tensor& w_in, const Params& p) {
  Tensor x = x_in.contiguous(), w = w_in.to(x_in.dtype()).contiguous();
  Geom g =
      make_geom(x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3), p);
  Tensor xc = kernels::in_compute(x), wc = kernels::in_compute(w);  // bfloat16: in float32
  Tensor out = Tensor::empty({g.N, g.K, g.OH, g.OW}, xc.dtype());
  kernels::dispatch_floating(xc.dtype(), "conv2d", [&]<class T>() {
    conv_forward_kernel<T>(xc.data<T>(), wc.data<T>(), out.data<T>(), g);
  });
  out = kernels::to_storage(out, x.dtype());
  if (needs_derivatives({&x, &w})) {
    struct Saved {
      Tensor x, w;
    };
    record(
        op("conv2d", conv_forward, x, w, p), out, Saved{x, w},
        rules::multilinear([p, g](const Saved& s, const Tensor& gy, const Node& n) -> TensorList {
          return {n.needs_input_grad(0) ? conv_input(gy, s.w, p, g.H, g.W) : Tensor(),
                  n.needs_input_grad(1) ? conv_weight(s.x, gy, p, g.kh, g.kw) : Tensor()};
        }));
  }
  return out;
}

// The input gradient of a convolution (= transposed convolution): gy [N, K, OH, OW], w
// [K, C/G, kh, kw] -> [N, C, H, W].
Tensor conv_input(const Tensor& gy_in, const Tensor& w_in, const Params& p, int64_t H, int64_t W) {
  Tensor w = w_in.contiguous(), gy = gy_in.to(w.dtype()).contiguous();
  Geom g = make_geom(gy.size(0), w.size(1) * p.groups, H, W, w.size(0), w.size(2), w.size(3), p);
  check_out_shape("conv_transpose2d", gy, g);
  Tensor gyc = kernels::in_compute(gy), wc = kernels::in_compute(w);  // bfloat16: in float32
  Tensor out = Tensor::empty({g.N, g.C, H, W}, wc.dtype());
  kernels::dispatch_floating(wc.dtype(), "conv_transpose2d", [&]<class T>() {
    conv_input_kernel<T>(gyc.data<T>(), wc.data<T>(), out.data<T>(), g);
  });
  out = kernels::to_storage(out, w.dtype());
  if (needs_derivatives({&gy, &w})) {
    struct Saved {
      Tensor gy, w;
    };
    record(op("conv_transpose2d", conv_input, gy, w, p, H, W), out, Saved{gy, w},
           rules::multilinear([p, g](const Saved& s, const Tensor& h, const Node& n) -> TensorList {
             return {n.needs_input_grad(0) ? conv_forward(h, s.w, p) : Tensor(),
                     n.needs_input_grad(1) ? conv_weight(h, s.gy, p, g.kh, g.kw) : Tensor()};
           }));
  }
  return out;
}

// The weight gradient of a convolution: x [N, C, H, W], gy [N, K, OH, OW] -> [K, C/G, kh, kw].
Tensor conv_weight(const Tensor& x_in, const Tensor& gy_in, const Params& p, int64_t kh,
                   int64_t kw) {
  Tensor x = x_in.contiguous(), gy = gy_in.to(x.dtype()).contiguous();
  Geom g = make_geom(x.size(0), x.size(1), x.size(2), x.size(3), gy.size(1), kh, kw, p);
  check_out_shape("conv2d_weight", gy, g);
  Tensor xc = kernels::in_compute(x), gyc = kernels::in_compute(gy);  // bfloat16: in float32
  Tensor out = Tensor::empty({g.K, g.Cg(), kh, kw}, xc.dtype());
  kernels::dispatch_floating(xc.dtype(), "conv2d_weight", [&]<class T>() {
    conv_weight_kernel<T>(xc.data<T>(), gyc.data<T>(), out.data<T>(), g);
  });
  out = kernels::to_storage(out, x.dtype());
  if (needs_derivatives({&x, &gy})) {
    struct Saved {
      Tensor x, gy;
    };
    record(op("conv2d_weight", conv_weight, x, gy, p, kh, kw), out, Saved{x, gy},
           rules::multilinear([p, g](const Saved& s, const Tensor& h, const Node& n) -> TensorList {
             return {n.needs_input_grad(0) ? conv_input(s.gy, h, p, g.H, g.W) : Tensor(),
                     n.needs_input_grad(1) ? conv_forward(s.x, h, p) : Tensor()};
           }));
  }
  return out;
}

Params make_params(const char* op, Size2 stride, Size2 padding, Size2 dilation, int64_t groups) {
  if (stride.h < 1 || stride.w < 1)
    fail<ValueError>("{}: stride must be >= 1, got ({}, {})", op, stride.h, stride.w);
  if (dilation.h < 1 || dilation.w < 1)
    fail<ValueError>("{}: dilation must be >= 1, got ({}, {})", op, dilation.h, dilation.w);
  if (padding.h < 0 || padding.w < 0)
    fail<ValueError>("{}: padding must be >= 0, got ({}, {})", op, padding.h, padding.w);
  if (groups < 1) fail<ValueError>("{}: groups must be >= 1, got {}", op, groups);
  return {stride.h, stride.w, padding.h, padding.w, dilation.h, dilation.w, groups};
}

// Channel and group checks shared by the convolutions. `in_ch` is the input's channel count,
// `out_ch` the output's, `per_group` the weight's channels per group (axis 1).
void check_channels(const char* op, const Tensor& x, const Tensor& w, int64_t in_ch, int64_t out_ch,
                    int64_t per_group, int64_t groups) {
  if (in_ch % groups != 0)
    fail<ShapeError>("{}: groups {} do not divide the {} input channels (input {}, weight {})", op,
                     groups, in_ch, x.shape(), w.shape());
  if (out_ch % groups != 0)
    fail<ShapeError>("{}: groups {} do not divide the {} output channels (input {}, weight {})", op,
                     groups, out_ch, x.shape(), w.shape());
  if (per_group * groups != in_ch)
    fail<ShapeError>(
        "{}: input {} has {} channels but weight {} with groups {} expects {} ({} per group)", op,
        x.shape(), in_ch, w.shape(), groups, per_group * groups, per_group);
}

// The dilated kernel must fit into the padded input on each spatial axis.
void check_fits(const char* op, const Tensor& x, const Tensor& w, int64_t extent, int64_t size,
                int64_t pad, int64_t kernel, int64_t dilation) {
  if (extent > size + 2 * pad)
    fail<ShapeError>(
        "{}: kernel of size {} (dilation {}, so spanning {}) is larger than the padded input of "
        "size {} + 2*{} (input {}, weight {})",
        op, kernel, dilation, extent, size, pad, x.shape(), w.shape());
}

void check_bias(const char* op, const Tensor& bias, int64_t channels) {
  if (bias.defined() && !(bias.dim() == 1 && bias.size(0) == channels))
    fail<ShapeError>("{}: bias {} must be [{}], one per output channel", op, bias.shape(),
                     channels);
}

void check_float(const char* op, const Tensor& x, const Tensor& w) {
  if (!is_floating(x.dtype()) || !is_floating(w.dtype()))
    fail<DtypeError>("{}: expected float tensors, got input {} and weight {}", op,
                     dtype_name(x.dtype()), dtype_name(w.dtype()));
}

Tensor add_channel_bias(const Tensor& out, const Tensor& bias) {
  if (!bias.defined()) return out;
  Shape s(std::vector<int64_t>(size_t(out.dim()), 1));
  s[1] = bias.numel();
  return add(out, reshape(bias.to(out.dtype()), s));
}

// "same" padding: total d(k - 1) per axis, half before; an odd total puts the extra at the end.
// Returns the symmetric part and pads x itself with the extra row / column when there is one.
Size2 same_padding(const char* op, Tensor& x, Size2 stride, Size2 dilation, int64_t kh,
                   int64_t kw) {
  if (stride.h != 1 || stride.w != 1)
    fail<ValueError>("{}: padding \"same\" needs stride 1, got ({}, {})", op, stride.h, stride.w);
  const int64_t th = dilation.h * (kh - 1), tw = dilation.w * (kw - 1);
  if (th % 2 || tw % 2) x = pad(x, {0, tw % 2, 0, th % 2});
  return {th / 2, tw / 2};
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& weight, const Tensor& bias, Size2 stride,
              ConvPadding padding, Size2 dilation, int64_t groups) {
  if (x_in.dim() != 4)
    fail<ShapeError>("conv2d: expected a 4-D input [N, C, H, W], got {}", x_in.shape());
  if (weight.dim() != 4)
    fail<ShapeError>("conv2d: expected a 4-D weight [K, C/groups, kh, kw], got {} (input {})",
                     weight.shape(), x_in.shape());
  check_float("conv2d", x_in, weight);
  make_params("conv2d", stride, padding.size, dilation, groups);  // validates the arguments
  check_channels("conv2d", x_in, weight, x_in.size(1), weight.size(0), weight.size(1), groups);
  check_bias("conv2d", bias, weight.size(0));
  Tensor x = x_in;
  Size2 pads = padding.size;
  if (padding.same)
    pads = same_padding("conv2d", x, stride, dilation, weight.size(2), weight.size(3));
  Params p = make_params("conv2d", stride, pads, dilation, groups);
  check_fits("conv2d", x_in, weight, p.dh * (weight.size(2) - 1) + 1, x.size(2), p.ph,
             weight.size(2), p.dh);
  check_fits("conv2d", x_in, weight, p.dw * (weight.size(3) - 1) + 1, x.size(3), p.pw,
             weight.size(3), p.dw);
  return add_channel_bias(conv_forward(x, weight, p), bias);
}

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride,
              ConvPadding padding, int64_t dilation, int64_t groups) {
  if (x.dim() != 3) fail<ShapeError>("conv1d: expected a 3-D input [N, C, L], got {}", x.shape());
  if (weight.dim() != 3)
    fail<ShapeError>("conv1d: expected a 3-D weight [K, C/groups, k], got {} (input {})",
                     weight.shape(), x.shape());
  check_float("conv1d", x, weight);
  make_params("conv1d", stride, padding.size, dilation, groups);
  check_channels("conv1d", x, weight, x.size(1), weight.size(0), weight.size(1), groups);
  check_bias("conv1d", bias, weight.size(0));
  if (!padding.same)
    check_fits("conv1d", x, weight, dilation * (weight.size(2) - 1) + 1, x.size(2), padding.size.w,
               weight.size(2), dilation);
  ConvPadding p2 = padding.same ? padding : ConvPadding(int64_t(0), padding.size.w);
  Tensor y = conv2d(unsqueeze(x, 2), unsqueeze(weight, 2), bias, Size2(int64_t(1), stride), p2,
                    Size2(int64_t(1), dilation), groups);
  return squeeze(y, 2);
}

Tensor conv_transpose2d(const Tensor& x_in, const Tensor& weight, const Tensor& bias, Size2 stride,
                        Size2 padding, Size2 output_padding, int64_t groups, Size2 dilation) {
  const char* op = "conv_transpose2d";
  if (x_in.dim() != 4)
    fail<ShapeError>("{}: expected a 4-D input [N, Cin, H, W], got {}", op, x_in.shape());
  if (weight.dim() != 4)
    fail<ShapeError>("{}: expected a 4-D weight [Cin, Cout/groups, kh, kw], got {} (input {})", op,
                     weight.shape(), x_in.shape());
  check_float(op, x_in, weight);
  Params p = make_params(op, stride, padding, dilation, groups);
  if (x_in.size(1) != weight.size(0))
    fail<ShapeError>("{}: input {} has {} channels but weight {} expects {}", op, x_in.shape(),
                     x_in.size(1), weight.shape(), weight.size(0));
  if (x_in.size(1) % groups != 0)
    fail<ShapeError>("{}: groups {} do not divide the {} input channels (input {}, weight {})", op,
                     groups, x_in.size(1), x_in.shape(), weight.shape());
  const int64_t cout = weight.size(1) * groups;
  check_bias(op, bias, cout);
  if (output_padding.h < 0 || output_padding.w < 0 ||
      (output_padding.h >= stride.h && output_padding.h >= dilation.h) ||
      (output_padding.w >= stride.w && output_padding.w >= dilation.w))
    fail<ValueError>("{}: output_padding ({}, {}) must be smaller than the stride or the dilation",
                     op, output_padding.h, output_padding.w);
  const int64_t kh = weight.size(2), kw = weight.size(3);
  const int64_t OH = (x_in.size(2) - 1) * p.sh - 2 * p.ph + p.dh * (kh - 1) + output_padding.h + 1;
  const int64_t OW = (x_in.size(3) - 1) * p.sw - 2 * p.pw + p.dw * (kw - 1) + output_padding.w + 1;
  if (OH < 1 || OW < 1)
    fail<ShapeError>("{}: input {} with weight {} and padding ({}, {}) gives an empty output", op,
                     x_in.shape(), weight.shape(), p.ph, p.pw);
  return add_channel_bias(conv_input(x_in, weight.to(x_in.dtype()), p, OH, OW), bias);
}

Tensor conv2d_weight(const Tensor& x, const Tensor& g, int64_t kh, int64_t kw, Size2 stride,
                     Size2 padding, Size2 dilation, int64_t groups) {
  const char* op = "conv2d_weight";
  if (x.dim() != 4 || g.dim() != 4)
    fail<ShapeError>("{}: expected a 4-D input and gradient, got {} and {}", op, x.shape(),
                     g.shape());
  check_float(op, x, g);
  Params p = make_params(op, stride, padding, dilation, groups);
  if (kh < 1 || kw < 1) fail<ValueError>("{}: kernel size must be >= 1, got {}x{}", op, kh, kw);
  if (x.size(1) % groups != 0 || g.size(1) % groups != 0)
    fail<ShapeError>("{}: groups {} do not divide the channels of input {} and gradient {}", op,
                     groups, x.shape(), g.shape());
  if (p.dh * (kh - 1) + 1 > x.size(2) + 2 * p.ph || p.dw * (kw - 1) + 1 > x.size(3) + 2 * p.pw)
    fail<ShapeError>("{}: kernel {}x{} is larger than the padded input {}", op, kh, kw, x.shape());
  return conv_weight(x, g, p, kh, kw);
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode,
           double value) {
  if (pads.size() % 2 != 0)
    fail<ValueError>("pad: pads must come in (before, after) pairs, got {} values for input {}",
                     pads.size(), x.shape());
  const int64_t axes = int64_t(pads.size()) / 2;
  if (axes > x.dim())
    fail<ShapeError>("pad: {} pairs of pads for an input {} of only {} axes", axes, x.shape(),
                     x.dim());
  for (int64_t v : pads)
    if (v < 0)
      fail<ValueError>("pad: pads must be >= 0, got {} (input {})", fmt::join(pads, ", "),
                       x.shape());
  const bool reflect = mode == "reflect";
  if (!reflect && mode != "constant")
    fail<ValueError>("pad: mode must be \"constant\" or \"reflect\", got \"{}\"", mode);
  Tensor out = x;
  for (int64_t a = 0; a < axes; ++a) {
    const int64_t axis = x.dim() - 1 - a, before = pads[2 * a], after = pads[2 * a + 1];
    if (before == 0 && after == 0) continue;
    const int64_t n = x.size(axis);
    if (reflect) {
      if (before >= n || after >= n)
        fail<ShapeError>(
            "pad: reflect padding ({}, {}) of axis {} must be smaller than its size {} (input {})",
            before, after, axis, n, x.shape());
      std::vector<int64_t> idx;
      for (int64_t i = -before; i < n + after; ++i)
        idx.push_back(i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
      out = index_select(out, axis, Tensor::from_vector(idx));
    } else {
      Shape sb = out.shape(), sa = out.shape();
      sb[axis] = before;
      sa[axis] = after;
      std::vector<Tensor> parts;
      if (before > 0) parts.push_back(full(sb, value, x.dtype()));
      parts.push_back(out);
      if (after > 0) parts.push_back(full(sa, value, x.dtype()));
      out = cat(parts, axis);
    }
  }
  return out;
}

}  // namespace ag
