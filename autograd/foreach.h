// foreach_update_: one elementwise, in-place update over lists of tensors, in one parallel pass.
//
// This is the primitive under the optimizers of nn/optim, and the one to use for an optimizer of
// your own: its update rule is written once, as an element function, and runs a SIMD register at
// a time over every parameter of a model, with the work of all parameters spread over the threads
// in one parallel region (thread t of n takes the t-th of n equal pieces of each parameter: the
// rows its GEMMs produced the gradient of, so the data is still in that core's cache).
//
//   // SGD without momentum: p <- p - lr g, for every (p, g) pair
//   std::vector<std::array<Tensor, 2>> items = {{p1, g1}, {p2, g2}};
//   foreach_update_<2>(items, {true, false}, [&]<class T>(size_t /*item*/) {
//     const T step = static_cast<T>(lr);
//     return [=](auto& x) {                  // x: std::array of 2 values or SIMD batches
//       using V = std::decay_t<decltype(x[0])>;
//       x[0] = x[0] - V(step) * x[1];
//     };
//   });
//
// items: for each parameter, its N operands (the parameter, its gradient, its state buffers),
// all of one shape and one float dtype; the dtype may differ from item to item. bfloat16 operands
// may mix with float32 ones in an item (state kept in bfloat16, a bfloat16 parameter with a float32
// gradient): the element function then sees float32 values (T = float), read from bfloat16
// exactly and rounded to nearest-even where it writes a bfloat16 operand. `written` marks
// the operands the element function changes; they are stored back and their version counters
// bumped (so a tensor saved for backward notices), the others are only read.
// rule: called as `rule.template operator()<T>(i)` for item i with T = float or double; it returns
// the element function for that item, a generic callable taking std::array<V, N>& where V is T
// or xsimd::batch<T>: write it with operators and xsimd's functions (xsimd::sqrt, xsimd::max,
// ...), which accept both. Every element sees the same arithmetic whether it falls in a register,
// a tail or a strided row.
//
// Not recorded on the tape: call it under NoGradGuard (or on tensors that do not require grad);
// AutogradError otherwise. ValueError for an undefined operand, ShapeError / DtypeError naming the
// item and operand whose shape or dtype differs from the item's first, before anything is
// written. Non-contiguous operands are updated through contiguous copies, written back.
#pragma once

// GCC 12 reports its own AVX-512 intrinsics (_mm512_undefined_*) as "(maybe) uninitialized" once
// xsimd's code is inlined; the warning is about the compiler's headers, not ours, and is silenced
// for this header's code only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <span>
#include <vector>

#include "autograd/small_vector.h"
#include "autograd/tensor.h"

namespace ag {

namespace foreach_detail {

// Checks the operands of every item (see foreach_update_).
void check_items(const char* op, std::span<const Tensor* const> operands, size_t n);
// A non-owning reference to a callable taking (t, nt): no allocation, unlike std::function.
class PieceRef {
 public:
  template <class F>
  PieceRef(F& f)  // NOLINT: implicit, as a function parameter
      : obj_(&f), call_([](void* o, int64_t t, int64_t nt) { (*static_cast<F*>(o))(t, nt); }) {}
  void operator()(int64_t t, int64_t nt) const { call_(obj_, t, nt); }

 private:
  void* obj_;
  void (*call_)(void*, int64_t, int64_t);
};
// Runs piece(t, nt) for t in [0, nt) on nt threads (one when total is small or inside a parallel
// region).
void run_pieces(int64_t total_elements, PieceRef piece);
// Bumps the version counter of t's storage (an in-place write).
void bump_version(const Tensor& t);

// f over n contiguous elements of N operands, a register at a time; the tail goes through one
// more register padded with each operand's last value. Pointers, flags and f by value: SIMD
// stores may alias anything, so references would be reloaded every iteration.
template <class T, size_t N, class F>
void dense(const std::array<T*, N> ptr, int64_t n, const std::array<bool, N> write, const F f) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = B::size;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    std::array<B, N> v;
    for (size_t k = 0; k < N; ++k) v[k] = B::load_unaligned(ptr[k] + i);
    f(v);
    for (size_t k = 0; k < N; ++k)
      if (write[k]) v[k].store_unaligned(ptr[k] + i);
  }
  if (i == n) return;
  const int64_t r = n - i;
  alignas(64) T lanes[N][W];
  std::array<B, N> v;
  for (size_t k = 0; k < N; ++k) {
    std::copy_n(ptr[k] + i, r, lanes[k]);
    std::fill(lanes[k] + r, lanes[k] + W, lanes[k][r - 1]);
    v[k] = B::load_aligned(lanes[k]);
  }
  f(v);
  for (size_t k = 0; k < N; ++k)
    if (write[k]) {
      v[k].store_aligned(lanes[k]);
      std::copy_n(lanes[k], r, ptr[k] + i);
    }
}

// The items of one dtype T: contiguous operands in place, others through contiguous copies.
template <class T, size_t N, class Rule>
void update_dtype(std::span<const std::array<Tensor, N>> items, const std::vector<size_t>& idx,
                  const std::array<bool, N>& write, Rule& rule) {
  struct Piece {
    std::array<T*, N> ptr;
    int64_t n;
    size_t item;
  };
  SmallVector<Piece, 16> pieces;
  std::vector<std::array<Tensor, N>> copies;  // of items with a non-contiguous operand
  std::vector<size_t> copied;
  int64_t total = 0;
  for (size_t i : idx) {
    const std::array<Tensor, N>* ops = &items[i];
    bool contiguous = true;
    for (const Tensor& t : *ops) contiguous = contiguous && t.is_contiguous();
    if (!contiguous) {
      copies.reserve(idx.size());  // (so that `ops` below stays valid)
      std::array<Tensor, N> c;
      for (size_t k = 0; k < N; ++k) c[k] = (*ops)[k].contiguous();
      copies.push_back(std::move(c));
      copied.push_back(i);
      ops = &copies.back();
    }
    Piece p{{}, (*ops)[0].numel(), i};
    for (size_t k = 0; k < N; ++k) p.ptr[k] = (*ops)[k].template data<T>();
    pieces.push_back(p);
    total += p.n;
  }
  using F = decltype(rule.template operator()<T>(size_t{0}));
  std::vector<F> fs;
  fs.reserve(pieces.size());
  for (const Piece& p : pieces) fs.push_back(rule.template operator()<T>(p.item));
  auto run = [&](int64_t t, int64_t nt) {
    constexpr int64_t kLine = 64 / sizeof(T);  // pieces start on cache-line boundaries
    for (size_t j = 0; j < pieces.size(); ++j) {
      const Piece& p = pieces[j];
      auto at = [&](int64_t s) { return s == nt ? p.n : p.n * s / nt / kLine * kLine; };
      const int64_t b = at(t), e = at(t + 1);
      if (b >= e) continue;
      std::array<T*, N> ptr = p.ptr;
      for (T*& q : ptr) q += b;
      dense<T, N>(ptr, e - b, write, fs[j]);
    }
  };
  run_pieces(total, run);
  for (size_t c = 0; c < copied.size(); ++c)
    for (size_t k = 0; k < N; ++k)
      if (write[k]) {
        Tensor dst = items[copied[c]][k];
        dst.copy_(copies[c][k]);
      }
}

// Items with a bfloat16 operand, computed in float32: each thread's piece of an item goes through
// float32 blocks of kBf16Block elements (bfloat16 operands widened into the block, rounded back
// after the element function ran on it), so no float32 copy of a whole operand is made.
inline constexpr int64_t kBf16Block = 1024;

template <size_t N, class Rule>
void update_bf16(std::span<const std::array<Tensor, N>> items, const std::vector<size_t>& idx,
                 const std::array<bool, N>& write, Rule& rule) {
  struct Piece {
    std::array<char*, N> ptr;
    std::array<bool, N> half;  // operand k is bfloat16
    int64_t n;
  };
  std::vector<Piece> pieces;
  std::vector<std::array<Tensor, N>> copies(idx.size());  // contiguous operands
  int64_t total = 0;
  for (size_t j = 0; j < idx.size(); ++j) {
    Piece p{{}, {}, items[idx[j]][0].numel()};
    for (size_t k = 0; k < N; ++k) {
      copies[j][k] = items[idx[j]][k].contiguous();
      p.half[k] = copies[j][k].dtype() == Dtype::bfloat16;
      p.ptr[k] = p.half[k] ? reinterpret_cast<char*>(copies[j][k].template data<bf16>())
                           : reinterpret_cast<char*>(copies[j][k].template data<float>());
    }
    pieces.push_back(p);
    total += p.n;
  }
  using F = decltype(rule.template operator()<float>(size_t{0}));
  std::vector<F> fs;
  for (size_t j = 0; j < idx.size(); ++j) fs.push_back(rule.template operator()<float>(idx[j]));
  auto run = [&](int64_t t, int64_t nt) {
    alignas(64) float block[N][kBf16Block];
    for (size_t j = 0; j < pieces.size(); ++j) {
      const Piece& p = pieces[j];
      auto at = [&](int64_t s) { return s == nt ? p.n : p.n * s / nt / 16 * 16; };
      for (int64_t b = at(t), e = at(t + 1); b < e; b += kBf16Block) {
        const int64_t len = std::min(kBf16Block, e - b);
        std::array<float*, N> ptr;
        for (size_t k = 0; k < N; ++k) {
          if (!p.half[k]) {
            ptr[k] = reinterpret_cast<float*>(p.ptr[k]) + b;
            continue;
          }
          const bf16* src = reinterpret_cast<const bf16*>(p.ptr[k]) + b;
          for (int64_t i = 0; i < len; ++i) block[k][i] = float(src[i]);
          ptr[k] = block[k];
        }
        dense<float, N>(ptr, len, write, fs[j]);
        for (size_t k = 0; k < N; ++k)
          if (p.half[k] && write[k]) {
            bf16* dst = reinterpret_cast<bf16*>(p.ptr[k]) + b;
            for (int64_t i = 0; i < len; ++i) dst[i] = bf16(block[k][i]);
          }
      }
    }
  };
  run_pieces(total, run);
  for (size_t j = 0; j < idx.size(); ++j)
    for (size_t k = 0; k < N; ++k)
      if (write[k] && !copies[j][k].same(items[idx[j]][k])) {
        Tensor dst = items[idx[j]][k];
        dst.copy_(copies[j][k]);
      }
}

}  // namespace foreach_detail

// Helpers for element functions, for V a float, a double or an xsimd batch of them:
// the square root, and the larger of two values that is NaN when either is (as ag::maximum).
template <class V>
V foreach_sqrt(V x) {
  if constexpr (std::is_floating_point_v<V>)
    return std::sqrt(x);
  else
    return xsimd::sqrt(x);
}
template <class V>
V foreach_maximum(V a, V b) {
  if constexpr (std::is_floating_point_v<V>)
    return std::isnan(a) ? a : std::isnan(b) ? b : std::max(a, b);
  else
    return xsimd::select(xsimd::isnan(a), a, xsimd::select(xsimd::isnan(b), b, xsimd::max(a, b)));
}

template <size_t N, class Rule>
void foreach_update_(std::span<const std::array<Tensor, N>> items,
                     const std::array<bool, N>& written, Rule rule) {
  static_assert(N > 0, "foreach_update_: at least one operand per item");
  SmallVector<const Tensor*, 64> operands;
  for (const auto& item : items)
    for (const Tensor& t : item) operands.push_back(&t);
  foreach_detail::check_items("foreach_update_", {operands.data(), operands.size()}, N);
  // Three groups: float32 items, float64 items, items with a bfloat16 operand.
  auto group = [&](size_t i) {
    for (const Tensor& t : items[i])
      if (t.dtype() == bfloat16) return 2;
    return items[i][0].dtype() == float64 ? 1 : 0;
  };
  std::array<std::vector<size_t>, 3> groups;
  for (size_t i = 0; i < items.size(); ++i) groups[static_cast<size_t>(group(i))].push_back(i);
  // The version counters are bumped before the update rather than after it: after a pass over
  // every parameter, the tensors' metadata is out of the cache (about 1 us for an mlp784 step's six
  // parameters). Nothing can look at them in between.
  for (const auto& item : items)
    for (size_t k = 0; k < N; ++k)
      if (written[k]) foreach_detail::bump_version(item[k]);
  for (int gr : {0, 1, 2}) {
    const std::vector<size_t>& idx = groups[static_cast<size_t>(gr)];
    if (idx.empty()) continue;
    if (gr == 0)
      foreach_detail::update_dtype<float, N>(items, idx, written, rule);
    else if (gr == 1)
      foreach_detail::update_dtype<double, N>(items, idx, written, rule);
    else
      foreach_detail::update_bf16<N>(items, idx, written, rule);
  }
}

// The same for a std::vector (or any contiguous range) of items.
template <size_t N, class Rule>
void foreach_update_(const std::vector<std::array<Tensor, N>>& items,
                     const std::array<bool, N>& written, Rule rule) {
  foreach_update_<N>(std::span<const std::array<Tensor, N>>(items), written, std::move(rule));
}

}  // namespace ag

#pragma GCC diagnostic pop
