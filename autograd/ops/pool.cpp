#include "autograd/ops/pool.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/kernels/bf16.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/kernels/max_pool.h"
#include "autograd/op.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/index.h"
#include "autograd/ops/linalg.h"
#include "autograd/ops/shape.h"

namespace ag {

namespace {

// Sizes of one pooling: planes = N * C images of H x W, windows kh x kw.
struct PoolGeom {
  int64_t planes, H, W, kh, kw, sh, sw, ph, pw, OH, OW;
};

PoolGeom pool_geom(const char* op, const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  if (x.dim() != 4)
    fail<ShapeError>("{}: expected a 4-D input [N, C, H, W], got {}", op, x.shape());
  if (!is_floating(x.dtype()))
    fail<DtypeError>("{}: expected a float tensor, got {}", op, dtype_name(x.dtype()));
  if (stride.h == 0 && stride.w == 0) stride = kernel;
  if (kernel.h < 1 || kernel.w < 1)
    fail<ValueError>("{}: kernel size must be >= 1, got ({}, {})", op, kernel.h, kernel.w);
  if (stride.h < 1 || stride.w < 1)
    fail<ValueError>("{}: stride must be >= 1, got ({}, {})", op, stride.h, stride.w);
  if (padding.h < 0 || padding.w < 0 || 2 * padding.h > kernel.h || 2 * padding.w > kernel.w)
    fail<ValueError>("{}: padding ({}, {}) must be >= 0 and at most half the kernel ({}, {})", op,
                     padding.h, padding.w, kernel.h, kernel.w);
  const int64_t H = x.size(2), W = x.size(3);
  if (kernel.h > H + 2 * padding.h || kernel.w > W + 2 * padding.w)
    fail<ShapeError>(
        "{}: kernel {}x{} is larger than the padded input {}x{} (input {}, padding ({}, {}))", op,
        kernel.h, kernel.w, H + 2 * padding.h, W + 2 * padding.w, x.shape(), padding.h, padding.w);
  return {x.size(0) * x.size(1),
          H,
          W,
          kernel.h,
          kernel.w,
          stride.h,
          stride.w,
          padding.h,
          padding.w,
          (H + 2 * padding.h - kernel.h) / stride.h + 1,
          (W + 2 * padding.w - kernel.w) / stride.w + 1};
}

using kernels::select_bits;

// out and idx [planes, OH, OW]: the window maxima and their flat positions h * W + w. Works a whole
// output row at a time: for each offset (u, v) of the window, every column j compares its candidate
// x[i*s - p + u, j*s - p + v] with its best so far, a loop without branches the compiler
// vectorises (per element branches mispredict on random data). Offsets run in row-major order and
// only a strictly larger value (or a first NaN) replaces the best, so the first maximum wins.
//
// The common 2x2 window with stride 2 and no padding has a loop of its own (kernels/max_pool.h):
// the four candidates of an output are compared in the same order with the same rule.
template <class T>
void max_pool_2x2(const T* x, T* out, int64_t* idx, const PoolGeom& g) {
  const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW;
  kernels::parallel_for(g.planes, g.planes * OH * OW > (1 << 15), [&](int64_t pl) {
    for (int64_t i = 0; i < OH; ++i) {
      const T* r0 = x + (pl * H + 2 * i) * W;
      kernels::max_pool_2x2_row(r0, r0 + W, out + (pl * OH + i) * OW, idx + (pl * OH + i) * OW, OW,
                                2 * i * W, W);
    }
  });
}

template <class T>
void max_pool_kernel(const T* x, T* out, int64_t* idx, const PoolGeom& g) {
  if (g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0)
    return max_pool_2x2(x, out, idx, g);
  const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW, sw = g.sw;
  kernels::parallel_for(g.planes, g.planes * OH * OW * g.kh * g.kw > (1 << 16), [&](int64_t pl) {
    const T* xp = x + pl * H * W;
    for (int64_t i = 0; i < OH; ++i) {
      T* best = out + (pl * OH + i) * OW;
      int64_t* at = idx + (pl * OH + i) * OW;
      std::fill(best, best + OW, -std::numeric_limits<T>::infinity());
      std::fill(at, at + OW, int64_t(-1));
      for (int64_t u = 0; u < g.kh; ++u) {
        const int64_t h = i * g.sh - g.ph + u;
        if (h < 0 || h >= H) continue;
        for (int64_t v = 0; v < g.kw; ++v) {
          // Columns j whose input column j*s - p + v lies inside [0, W).
          const int64_t off = v - g.pw;
          const int64_t lo = std::clamp<int64_t>(off >= 0 ? 0 : (-off + sw - 1) / sw, 0, OW);
          const int64_t hi = std::clamp<int64_t>((W - off + sw - 1) / sw, lo, OW);
          const T* xr = xp + h * W + off;
          const int64_t base = h * W + off;
          for (int64_t j = lo; j < hi; ++j) {
            const T val = xr[j * sw];
            // val != val: val is NaN. at < 0: the first real position of the window.
            const bool take = (val > best[j]) | ((val != val) & (best[j] == best[j])) | (at[j] < 0);
            best[j] = select_bits(take, val, best[j]);
            at[j] += int64_t(take) * (base + j * sw - at[j]);
          }
        }
      }
    }
  });
}

// gx [planes, H, W] = 0, then gx[plane, idx[o]] += g[o] for every output position o.
template <class T>
void max_pool_scatter(const T* g, const int64_t* idx, T* gx, const PoolGeom& q) {
  const int64_t hw = q.H * q.W, ohw = q.OH * q.OW;
  kernels::parallel_for(q.planes, q.planes * hw > (1 << 16), [&](int64_t pl) {
    T* dst = gx + pl * hw;
    std::fill(dst, dst + hw, T(0));
    for (int64_t o = 0; o < ohw; ++o) dst[idx[pl * ohw + o]] += g[pl * ohw + o];
  });
}

// [OH, H]: row i averages the input rows of adaptive window i.
Tensor averaging_matrix(int64_t out, int64_t in, Dtype dtype) {
  std::vector<double> m(size_t(out * in), 0.0);
  for (int64_t i = 0; i < out; ++i) {
    const int64_t s = i * in / out, e = ((i + 1) * in + out - 1) / out;
    for (int64_t k = s; k < e; ++k) m[size_t(i * in + k)] = 1.0 / double(e - s);
  }
  return Tensor::from_vector(m, {out, in}).to(dtype);
}

}  // namespace

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x_in, Size2 kernel, Size2 stride,
                                                  Size2 padding) {
  PoolGeom g = pool_geom("max_pool2d", x_in, kernel, stride, padding);
  Tensor x = x_in.contiguous();
  const int64_t N = x.size(0), C = x.size(1);
  Tensor xc = kernels::in_compute(x);  // bfloat16: in float32 (the maxima are exact again)
  Tensor out = Tensor::empty({N, C, g.OH, g.OW}, xc.dtype());
  Tensor idx = Tensor::empty({N, C, g.OH, g.OW}, int64);
  kernels::dispatch_floating(xc.dtype(), "max_pool2d", [&]<class T>() {
    max_pool_kernel<T>(xc.data<T>(), out.data<T>(), idx.data<int64_t>(), g);
  });
  out = kernels::to_storage(out, x.dtype());
  if (needs_derivatives({&x})) {
    struct Saved {
      Tensor indices;
    };
    // The gradient goes to the winners: scatter_add into zeros (a recorded op, so the second
    // derivative works); the JVP gathers the tangent at the winners.
    auto flat = [N, C](const Tensor& t, int64_t hw) { return reshape(t, {N, C, hw}); };
    record(op("max_pool2d", max_pool2d_with_indices, x, kernel, stride, padding), out, Saved{idx},
           Rules{.backward = [g, N, C, flat](const Saved& s, const Tensor& gy) -> TensorList {
                   Tensor gx = scatter_add(zeros({N, C, g.H * g.W}, gy.dtype()), 2,
                                           flat(s.indices, g.OH * g.OW), flat(gy, g.OH * g.OW));
                   return {reshape(gx, {N, C, g.H, g.W})};
                 },
                 .jvp =
                     [g, N, C, flat](const Saved& s, const TensorList& t) {
                       Tensor picked =
                           gather(flat(t[0], g.H * g.W), 2, flat(s.indices, g.OH * g.OW));
                       return reshape(picked, {N, C, g.OH, g.OW});
                     },
                 // One direct scatter pass.
                 .fused_backward = [g, N, C](const Saved& s, const Tensor& gy) -> TensorList {
                   Tensor gc = kernels::in_compute(gy).contiguous();
                   Tensor gx = Tensor::empty({N, C, g.H, g.W}, gc.dtype());
                   kernels::dispatch_floating(gc.dtype(), "max_pool2d", [&]<class T>() {
                     max_pool_scatter<T>(gc.data<T>(), s.indices.data<int64_t>(), gx.data<T>(), g);
                   });
                   return {gx};
                 }});
  }
  return {out, idx};
}

Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  return max_pool2d_with_indices(x, kernel, stride, padding).first;
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding,
                  bool count_include_pad) {
  PoolGeom g = pool_geom("avg_pool2d", x, kernel, stride, padding);
  const int64_t N = x.size(0), C = x.size(1);
  Size2 s(g.sh, g.sw), p(g.ph, g.pw);
  Tensor box = full({1, 1, g.kh, g.kw}, 1.0, x.dtype());
  Tensor sums = conv2d(reshape(x, {N * C, 1, g.H, g.W}), box, Tensor(), s, p);
  Tensor counts;
  if (count_include_pad || (g.ph == 0 && g.pw == 0)) {
    counts = full({1, 1, 1, 1}, double(g.kh * g.kw), x.dtype());
  } else {
    NoGradGuard no_grad;
    counts = conv2d(ones({1, 1, g.H, g.W}, x.dtype()), box, Tensor(), s, p);
  }
  return reshape(div(sums, counts), {N, C, g.OH, g.OW});
}

Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
  if (x.dim() < 2)
    fail<ShapeError>("adaptive_avg_pool2d: expected an input [..., H, W], got {}", x.shape());
  if (!is_floating(x.dtype()))
    fail<DtypeError>("adaptive_avg_pool2d: expected a float tensor, got {}", dtype_name(x.dtype()));
  if (output_size.h < 1 || output_size.w < 1)
    fail<ValueError>("adaptive_avg_pool2d: output size must be >= 1, got ({}, {}) for input {}",
                     output_size.h, output_size.w, x.shape());
  const int64_t H = x.size(-2), W = x.size(-1);
  if (H < 1 || W < 1)
    fail<ShapeError>("adaptive_avg_pool2d: input {} has an empty spatial axis", x.shape());
  Tensor ah = averaging_matrix(output_size.h, H, x.dtype());
  Tensor aw = averaging_matrix(output_size.w, W, x.dtype());
  return matmul(matmul(ah, x), transpose(aw, 0, 1));
}

}  // namespace ag
