#include "autograd/ops/linalg.h"

#include <cblas.h>  // openblas_set_num_threads
#include <omp.h>

#include <algorithm>
#include <array>
#include <tuple>
#include <type_traits>
#include <utility>

#include "autograd/kernels/bf16.h"
#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/gemm.h"
#include "autograd/kernels/loops.h"
#include "autograd/op.h"
#include "autograd/ops/activation.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/shape.h"

namespace ag {

using kernels::available_threads;
using kernels::Gemm;
using kernels::gemm;
using kernels::gemm_pair;
using kernels::kSplitWork;

namespace {

// How BLAS can read the matrix held in the last two axes of t (rows x cols): row-major with leading
// dimension ld, or transposed (column-major) with leading dimension ld. ok = false if neither.
struct MatrixLayout {
  bool ok = false;
  bool trans = false;
  int64_t ld = 1;
};

MatrixLayout layout(const Tensor& t) {
  int64_t n = t.dim();
  int64_t r = t.shape()[n - 2], c = t.shape()[n - 1];
  int64_t sr = t.strides()[n - 2], sc = t.strides()[n - 1];
  if ((sc == 1 || c == 1) && (r == 1 || sr >= std::max<int64_t>(1, c)))
    return {true, false, r == 1 ? std::max<int64_t>(1, c) : sr};
  if ((sr == 1 || r == 1) && (c == 1 || sc >= std::max<int64_t>(1, r)))
    return {true, true, c == 1 ? std::max<int64_t>(1, r) : sc};
  return {};
}

// First element of a (possibly non-contiguous) tensor, as BLAS reads it with the layout above.
template <class T>
const T* first_element(const Tensor& t) {
  return static_cast<const T*>(t.impl()->storage->data) + t.offset();
}

Tensor blas_ready(const Tensor& t) { return layout(t).ok ? t : t.contiguous(); }

// t as a matrix [rows, last], rows = product of the leading axes. Unlike reshape(t, {-1, last}),
// this also works for last == 0.
Tensor as_rows(const Tensor& t) {
  Shape lead(t.shape().begin(), t.shape().end() - 1);
  return reshape(t, Shape{lead.numel(), t.shape()[t.dim() - 1]});
}

// The element offsets of a's and b's matrices for each entry of the broadcast batch shape `batch`
// (a's batch axes ba, b's bb): entry t's at [2 t] and [2 t + 1].
std::vector<int64_t> batch_offsets(const Shape& batch, const Tensor& a, const Shape& ba,
                                   const Tensor& b, const Shape& bb) {
  // Broadcast batch strides of each operand.
  int64_t nd = batch.size(), nbatch = batch.numel();
  std::vector<int64_t> sa(nd, 0), sb(nd, 0);
  for (int64_t i = 0; i < nd; ++i) {
    int64_t ia = i - (nd - ba.size()), ib = i - (nd - bb.size());
    if (ia >= 0 && ba[ia] != 1) sa[i] = a.strides()[ia];
    if (ib >= 0 && bb[ib] != 1) sb[i] = b.strides()[ib];
  }
  std::vector<int64_t> idx(nd, 0), offsets(2 * nbatch);
  int64_t oa = 0, ob = 0;
  for (int64_t t = 0; t < nbatch; ++t) {
    offsets[2 * t] = oa;
    offsets[2 * t + 1] = ob;
    for (int64_t d = nd - 1; d >= 0; --d) {
      oa += sa[d];
      ob += sb[d];
      if (++idx[d] < batch[d]) break;
      oa -= sa[d] * batch[d];
      ob -= sb[d] * batch[d];
      idx[d] = 0;
    }
  }
  return offsets;
}

// Batch entry t of a bfloat16 product into o [..., m, n] (bfloat16, or float32): one
// kernels::gemm_bf16 call on the operands' matrices at offsets[2 t] and offsets[2 t + 1].
void bf16_entry(const Tensor& a, const MatrixLayout& la, const Tensor& b, const MatrixLayout& lb,
                const Tensor& o, const std::vector<int64_t>& offsets, int64_t t) {
  const int64_t m = a.shape()[a.dim() - 2], k = a.shape()[a.dim() - 1], n = b.shape()[b.dim() - 1];
  const bf16* pa = first_element<bf16>(a) + offsets[2 * t];
  const bf16* pb = first_element<bf16>(b) + offsets[2 * t + 1];
  if (o.dtype() == float32)
    kernels::gemm_bf16(la.trans, lb.trans, m, n, k, pa, la.ld, pb, lb.ld,
                       o.data<float>() + t * m * n, n);
  else
    kernels::gemm_bf16(la.trans, lb.trans, m, n, k, pa, la.ld, pb, lb.ld,
                       o.data<bf16>() + t * m * n, n);
}

// [..., m, k] @ [..., k, n] with both ranks >= 2 and matching float dtypes; no recording.
// bfloat16 operands give a bfloat16 result (float32 with keep_float32).
Tensor matmul_kernel(const Tensor& a_in, const Tensor& b_in, bool keep_float32 = false) {
  Tensor a = blas_ready(a_in), b = blas_ready(b_in);
  int64_t na = a.dim(), nb = b.dim();
  int64_t m = a.shape()[na - 2], k = a.shape()[na - 1], n = b.shape()[nb - 1];
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape os = batch;
  os.push_back(m);
  os.push_back(n);
  Tensor out = Tensor::empty(os, a.dtype());
  if (out.numel() == 0) return out;
  if (k == 0) return zeros(os, a.dtype());
  MatrixLayout la = layout(a), lb = layout(b);
  if (a.dtype() == bfloat16) {
    // Products accumulated in float32, rounded once into a bfloat16 result or kept in float32.
    Tensor o = keep_float32 ? Tensor::empty(os, float32) : out;
    std::vector<int64_t> offsets = batch_offsets(batch, a, ba, b, bb);
    for (int64_t t = 0; t < batch.numel(); ++t) bf16_entry(a, la, b, lb, o, offsets, t);
    return o;
  }
  kernels::dispatch_floating(a.dtype(), "matmul", [&]<class T>() {
    const T* pa = first_element<T>(a);
    const T* pb = first_element<T>(b);
    T* po = out.data<T>();
    int64_t nbatch = batch.numel();
    // b shared by every batch entry and a's rows stacked evenly: one GEMM with m * batch rows.
    bool b_shared = true;
    for (int64_t i = 0; i < bb.size(); ++i)
      b_shared = b_shared && (bb[i] == 1 || b.strides()[i] == 0);
    bool a_stacked = !la.trans && a.is_contiguous() && ba == batch;
    if (nbatch > 1 && b_shared && a_stacked) {
      gemm(false, lb.trans, m * nbatch, n, k, pa, la.ld, pb, lb.ld, po, n);
      return;
    }
    // The entries: spread over the threads, one single-threaded GEMM each, when they are many and
    // small (attention heads), else one after the other, each GEMM threaded by itself. float64
    // entries stay serial (OpenBLAS, see available_threads).
    std::vector<int64_t> offsets = batch_offsets(batch, a, ba, b, bb);
    auto entry = [&](int64_t t) {
      gemm(la.trans, lb.trans, m, n, k, pa + offsets[2 * t], la.ld, pb + offsets[2 * t + 1], lb.ld,
           po + t * m * n, n);
    };
    const int threads = available_threads<T>();
    if (threads > 1 && nbatch >= threads && m * n * k < kSplitWork) {
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int64_t t = 0; t < nbatch; ++t) entry(t);
    } else {
      // Not under an inactive `parallel if (false)`: the GEMM's own parallel region would then be
      // nested and start a new team of threads on every call.
      for (int64_t t = 0; t < nbatch; ++t) entry(t);
    }
  });
  return out;
}

// linear's gradients when no graph of them is recorded, as one parallel run:
//   gw [out, in] = g2^T @ x2,   gb [out] = column sums of g2 (when need_b),
//   gx [..., in] = g @ W (when need_x; its GEMM and gw's share the threads: gemm_pair)
// (g2, x2: g and x as matrices of rows). gb is summed by the threads that compute gw's rows, from
// the same columns of g. Returns undefined tensors if a size is zero (the caller then takes the
// composite path).
std::array<Tensor, 3> linear_grads(const Tensor& g_in, const Tensor& x, const Tensor& w,
                                   bool need_x, bool need_b) {
  const Dtype d = x.dtype();
  Tensor g2 = blas_ready(as_rows(g_in.to(d))), x2 = blas_ready(as_rows(x)), wr = blas_ready(w);
  const int64_t rows = g2.shape()[0], outf = w.shape()[0], in = w.shape()[1];
  if (rows == 0 || outf == 0 || in == 0) return {};
  Tensor gx = need_x ? Tensor::empty(x.shape(), d) : Tensor(), gw = Tensor::empty(w.shape(), d);
  Tensor gb = need_b ? Tensor::empty({outf}, d) : Tensor();
  MatrixLayout lg = layout(g2), lx = layout(x2), lw = layout(wr);
  kernels::dispatch_floating(d, "linear", [&]<class T>() {
    auto ptr = [](const Tensor& t) { return first_element<T>(t); };
    Gemm<T> weight{!lg.trans, lx.trans, outf,  in,           rows, ptr(g2),
                   lg.ld,     ptr(x2),  lx.ld, gw.data<T>(), in};
    if (need_b) weight.row_sums = gb.data<T>();
    if (!need_x) return gemm(weight);
    Gemm<T> input{lg.trans, lw.trans, rows,  in,           outf, ptr(g2),
                  lg.ld,    ptr(wr),  lw.ld, gx.data<T>(), in};
    gemm_pair(input, weight);
  });
  return {std::move(gx), std::move(gw), std::move(gb)};
}

Dtype common_float(const char* op, const Tensor& a, const Tensor& b) {
  if (!is_floating(a.dtype()) || !is_floating(b.dtype()))
    fail<DtypeError>("{}: expected float tensors, got {} and {}", op, dtype_name(a.dtype()),
                     dtype_name(b.dtype()));
  if (a.dtype() == float64 || b.dtype() == float64) return float64;
  return a.dtype() == bfloat16 && b.dtype() == bfloat16 ? bfloat16 : float32;
}

// Both ranks >= 2. Recorded.
Tensor matmul_nd(const Tensor& a_in, const Tensor& b_in) {
  Dtype d = common_float("matmul", a_in, b_in);
  Tensor a = a_in.to(d), b = b_in.to(d);
  Tensor out = matmul_kernel(a, b);
  if (needs_derivatives({&a, &b})) {
    struct Saved {
      Tensor a, b;
    };
    record(op("matmul", matmul_nd, a, b), out, Saved{a, b},
           rules::multilinear([](const Saved& s, const Tensor& g, const Node& n) -> TensorList {
             Tensor ga, gb;
             if (n.needs_input_grad(0)) ga = matmul(g, transpose(s.b, -1, -2));
             if (n.needs_input_grad(1)) {
               if (s.b.dim() == 2 && s.a.dim() > 2) {
                 // Sum over a's batch axes inside one GEMM: [k, rows] @ [rows, n].
                 gb = matmul(transpose(as_rows(s.a), 0, 1), as_rows(g));
               } else {
                 gb = matmul(transpose(s.a, -1, -2), g);
               }
             }
             return {ga, gb};
           }));
  }
  return out;
}

}  // namespace

namespace {
// Under autocast (grad_mode.h): a float32 operand converted, recorded.
Tensor autocast(const Tensor& t) {
  return t.defined() && t.dtype() == float32 && autocast_dtype() == bfloat16 ? t.to(bfloat16) : t;
}
bool casts(const Tensor& t) { return t.defined() && t.dtype() == float32; }
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (autocast_dtype() == bfloat16 && (casts(a) || casts(b)))
    return matmul(autocast(a), autocast(b));
  if (a.dim() == 0 || b.dim() == 0)
    fail<ShapeError>("matmul: {} @ {}: both operands need at least one axis", a.shape(), b.shape());
  int64_t ka = a.shape()[a.dim() - 1];
  int64_t kb = b.dim() == 1 ? b.shape()[0] : b.shape()[b.dim() - 2];
  if (ka != kb)
    fail<ShapeError>("matmul: {} @ {}: inner sizes {} and {} differ", a.shape(), b.shape(), ka, kb);
  if (a.dim() == 1 && b.dim() == 1)
    return reshape(matmul_nd(unsqueeze(a, 0), unsqueeze(b, 1)), Shape{});
  if (a.dim() == 1) return squeeze(matmul_nd(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(matmul_nd(a, unsqueeze(b, 1)), -1);
  {
    // Batch axes must broadcast; name both shapes if not.
    Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
    int64_t n = std::max(ba.size(), bb.size());
    for (int64_t i = 0; i < n; ++i) {
      int64_t x = i - (n - ba.size()) >= 0 ? ba[i - (n - ba.size())] : 1;
      int64_t y = i - (n - bb.size()) >= 0 ? bb[i - (n - bb.size())] : 1;
      if (x != y && x != 1 && y != 1)
        fail<ShapeError>("matmul: {} @ {}: batch axes {} and {} cannot be broadcast", a.shape(),
                         b.shape(), ba, bb);
    }
  }
  return matmul_nd(a, b);
}

Tensor outer(const Tensor& a, const Tensor& b) {
  if (a.dim() != 1 || b.dim() != 1)
    fail<ShapeError>("outer: expected two vectors, got {} and {}", a.shape(), b.shape());
  return matmul_nd(unsqueeze(a, 1), unsqueeze(b, 0));
}

namespace {

// linear's argument errors: w [out, in], x [..., in], b [out].
void check_linear(const char* op, const Tensor& x, const Tensor& w, const Tensor& b) {
  if (w.dim() != 2)
    fail<ShapeError>("{}: weight must be [out_features, in_features], got {}", op, w.shape());
  if (x.dim() == 0 || x.shape()[x.dim() - 1] != w.shape()[1])
    fail<ShapeError>("{}: input {} and weight {}: input features {} differ from the weight's {}",
                     op, x.shape(), w.shape(), x.dim() ? x.shape()[x.dim() - 1] : 0, w.shape()[1]);
  int64_t outf = w.shape()[0];
  if (b.defined() && !(b.dim() == 1 && b.shape()[0] == outf))
    fail<ShapeError>("{}: bias {} does not match weight {} (expected [{}])", op, b.shape(),
                     w.shape(), outf);
}

// out [rows, outf] = x2 [rows, in] @ w [outf, in]^T (+ b); just b (or 0) when in = 0. With
// `relu`, clamped at zero as the GEMM finishes (Gemm::relu).
void linear_forward(const Tensor& out, const Tensor& x2, const Tensor& w, const Tensor& b,
                    bool relu = false) {
  const int64_t rows = x2.shape()[0], in = w.shape()[1], outf = w.shape()[0];
  Tensor wr = blas_ready(w);
  MatrixLayout lx = layout(x2), lw = layout(wr);
  kernels::dispatch_floating(out.dtype(), "linear", [&]<class T>() {
    T* po = out.data<T>();
    Tensor bc = b.defined() ? b.contiguous() : Tensor();
    const T* pb = b.defined() ? bc.data<T>() : nullptr;
    if (in == 0) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < outf; ++j)
          po[r * outf + j] = pb && (!relu || pb[j] > T(0)) ? pb[j] : T(0);
      return;
    }
    const T* px = first_element<T>(x2);
    const T* pw = first_element<T>(wr);
    Gemm<T> g{lx.trans, !lw.trans, rows, outf, in, px, lx.ld, pw, lw.ld, po, outf, pb};
    g.relu = relu;
    gemm(g);
  });
}

struct LinearSaved {
  Tensor x, w;
};

// Composite: the formulas as differentiable matmuls (x: [..., in], g: [..., out]).
constexpr auto linear_composite = [](const LinearSaved& s, const Tensor& g,
                                     const Node& n) -> TensorList {
  Tensor g2 = as_rows(g);
  return {n.needs_input_grad(0) ? matmul(g, s.w) : Tensor(),
          n.needs_input_grad(1) ? matmul(transpose(g2, 0, 1), as_rows(s.x)) : Tensor(),
          n.needs_input_grad(2) ? sum(g2, {0}) : Tensor()};
};

// d out = linear(dx, w, db) + linear(x, dw)
constexpr auto linear_jvp = [](const LinearSaved& s, const TensorList& t) -> Tensor {
  Tensor r = t[0].defined() || t[2].defined()
                 ? linear(t[0].defined() ? t[0] : zeros_like(s.x), s.w, t[2])
                 : Tensor();
  if (t[1].defined()) {
    Tensor rw = linear(s.x, t[1]);
    r = r.defined() ? add(r, rw) : rw;
  }
  return r;
};

// The GEMMs at once, their threads shared, the bias gradient summed by the weight gradient's
// threads; the composite when a size is zero.
constexpr auto linear_fused_backward = [](const LinearSaved& s, const Tensor& g,
                                          const Node& n) -> TensorList {
  if (!n.needs_input_grad(1) || s.x.dtype() == bfloat16) return linear_composite(s, g, n);
  auto [gx, gw, gb] = linear_grads(g, s.x, s.w, n.needs_input_grad(0), n.needs_input_grad(2));
  if (!gw.defined()) return linear_composite(s, g, n);
  return moved_list(std::move(gx), std::move(gw), std::move(gb));
};

}  // namespace

namespace {

// linear's and linear_relu's operands in the common float dtype, x as a matrix of rows, and the
// output allocated.
struct LinearOperands {
  Tensor x, w, b, x2, out;
};
LinearOperands linear_operands(const char* op, const Tensor& x_in, const Tensor& w_in,
                               const Tensor& b_in) {
  check_linear(op, x_in, w_in, b_in);
  const Dtype d = common_float(op, x_in, w_in);
  LinearOperands o{x_in.to(d), w_in.to(d), b_in.defined() ? b_in.to(d) : Tensor(), {}, {}};
  o.x2 = blas_ready(as_rows(o.x));
  Shape os = o.x.shape();
  os[os.size() - 1] = o.w.shape()[0];
  o.out = Tensor::empty(os, d);
  return o;
}

struct LinearReluSaved {
  Tensor x, w, out;
};

// g * [out > 0]. Written into g itself when nothing else refers to g or its buffer (a gradient the
// engine made and hands over, when no graph of the backward is recorded): the mask then costs no
// new buffer, cold in cache, to write.
Tensor relu_mask(const Tensor& g, const Tensor& out) {
  if (!exclusively_owned(g) || !g.is_contiguous() || !out.is_contiguous() ||
      g.dtype() != out.dtype() || !(g.shape() == out.shape()) ||
      !(g.dtype() == float32 || g.dtype() == float64))
    return relu_backward(g, out);
  Tensor m = g;
  kernels::dispatch_floating(m.dtype(), "linear_relu", [&]<class T>() {
    kernels::map<T, T, T>(
        m, [](T a, T o) { return o > T(0) ? a : T(0); }, m, out);
  });
  return m;
}

}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  if (autocast_dtype() == bfloat16 && (casts(x_in) || casts(w_in) || casts(b_in)))
    return linear(autocast(x_in), autocast(w_in), autocast(b_in));
  auto [x, w, b, x2, out] = linear_operands("linear", x_in, w_in, b_in);
  auto kernel = [&] {
    if (out.numel() == 0) return;
    if (out.dtype() != bfloat16) return linear_forward(out, x2, w, b);
    // x2 @ w^T in float32 from the bfloat16 operands, plus the bias, rounded once.
    NoGradGuard ng;
    Tensor r = w.shape()[1] == 0 ? zeros({x2.shape()[0], w.shape()[0]}, float32)
                                 : matmul_kernel(x2, transpose(w, 0, 1), /*keep_float32=*/true);
    if (b.defined()) r.add_(b.detach());
    kernels::copy_into(out, reshape(r, out.shape()));
  };
  if (!needs_derivatives({&x, &w, &b})) {
    kernel();
    return out;
  }
  record_around(
      op("linear", linear, x, w, b), out, LinearSaved{x, w},
      Rules{
          .backward = linear_composite, .jvp = linear_jvp, .fused_backward = linear_fused_backward},
      kernel);
  return out;
}

Tensor linear_relu(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  const bool cast = autocast_dtype() == bfloat16 && (casts(x_in) || casts(w_in) || casts(b_in));
  if (cast || common_float("linear_relu", x_in, w_in) == bfloat16) {
    check_linear("linear_relu", x_in, w_in, b_in);
    return relu(linear(x_in, w_in, b_in));
  }
  auto [x, w, b, x2, out] = linear_operands("linear_relu", x_in, w_in, b_in);
  auto kernel = [&] {
    if (out.numel() > 0) linear_forward(out, x2, w, b, /*relu=*/true);
  };
  if (!needs_derivatives({&x, &w, &b})) {
    kernel();
    return out;
  }
  record_around(
      op("linear_relu", linear_relu, x, w, b), out, LinearReluSaved{x, w, out},
      Rules{.backward = [](const LinearReluSaved& s, const Tensor& g, const Node& n) -> TensorList {
              return linear_composite({s.x, s.w}, relu_backward(g, s.out), n);
            },
            .jvp = [](const LinearReluSaved& s, const TensorList& t) -> Tensor {
              Tensor r = linear_jvp({s.x, s.w}, t);
              return r.defined() ? relu_backward(r, s.out) : r;
            },
            .fused_backward = [](const LinearReluSaved& s, const Tensor& g,
                                 const Node& n) -> TensorList {
              return linear_fused_backward({s.x, s.w}, relu_mask(g, s.out), n);
            }},
      kernel);
  return out;
}

void set_blas_threads(int n) { openblas_set_num_threads(n); }

}  // namespace ag
