// Internal: elementwise loops written once for SIMD batches and scalars (xsimd).
//
// map_simd<T>(out, f, in...) is kernels::map for floating T where f calls transcendental functions:
// GCC turns std::tanh or std::exp in a loop into one libm call per element, while xsimd evaluates
// them a whole register at a time. f is a generic lambda written with xsimd's functions
// (xsimd::tanh, xsimd::exp, ...), which accept both xsimd::batch<T> and T: contiguous rows run in
// batches, tails and strided rows element by element.
#pragma once

// GCC 12 reports its own AVX-512 intrinsics (_mm512_undefined_*) as "(maybe) uninitialized" once
// xsimd's math is inlined; the warning is about the compiler's headers, not ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "autograd/kernels/loops.h"
#include "autograd/kernels/rows.h"

namespace ag::kernels {

template <class T, class... In, class F>
void map_simd(const Tensor& out, F f, const In&... in) {
  constexpr int N = 1 + sizeof...(In);
  auto L = make_loop<N>(out.shape(), {out.impl(), in.impl()...});
  for_each_row(L, [f](char** p, const int64_t* s, int64_t n) {
    bool dense = true;
    for (int k = 0; k < N; ++k) dense = dense && s[k] == static_cast<int64_t>(sizeof(T));
    T* o = reinterpret_cast<T*>(p[0]);
    [&]<size_t... I>(std::index_sequence<I...>) {
      if (dense) {
        using B = xsimd::batch<T>;
        constexpr int64_t W = B::size;
        int64_t i = 0;
        for (; i + W <= n; i += W)
          f(B::load_unaligned(reinterpret_cast<const T*>(p[I + 1]) + i)...).store_unaligned(o + i);
        if (i < n) {
          // The tail as one more register: each operand's last r values, padded with its last
          // value (so f only sees values of the row); r results are kept.
          const int64_t r = n - i;
          alignas(64) T lanes[N][W];
          ((std::copy_n(reinterpret_cast<const T*>(p[I + 1]) + i, r, lanes[I]),
            std::fill(lanes[I] + r, lanes[I] + W, lanes[I][r - 1])),
           ...);
          f(B::load_aligned(lanes[I])...).store_aligned(lanes[N - 1]);
          std::copy_n(lanes[N - 1], r, o + i);
        }
      } else {
        for (int64_t i = 0; i < n; ++i)
          *reinterpret_cast<T*>(p[0] + i * s[0]) =
              f(*reinterpret_cast<const T*>(p[I + 1] + i * s[I + 1])...);
      }
    }
    (std::make_index_sequence<sizeof...(In)>{});
  });
}

}  // namespace ag::kernels

namespace ag::kernels {

// Reads W values from p as xsimd::batch<T> (V = the batch type) or one value (V = T).
template <class V, class T>
V load(const T* p) {
  if constexpr (std::is_same_v<V, T>)
    return *p;
  else
    return V::load_unaligned(p);
}

// sum over k in [0, n) of f(k), where f(k, V{}) returns either a SIMD batch of the terms k .. k+W-1
// (V = xsimd::batch<T>) or the single term k (V = T); f is a generic lambda written once for both,
// usually with load<V>. Terms are added in T, a register at a time, and the running total is kept
// in double, adding T partials of at most 16 terms per lane, so long rows (a 50k vocabulary) lose
// no accuracy to it.
template <class T, class F>
double row_sum(int64_t n, F f) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = B::size;
  constexpr int64_t kChunk = 16 * W;
  double total = 0;
  int64_t k = 0;
  while (k + W <= n) {
    B part(T(0));
    for (int64_t end = std::min(n - W, k + kChunk - W); k <= end; k += W) part += f(k, B{});
    total += static_cast<double>(xsimd::hadd(part));
  }
  for (; k < n; ++k) total += static_cast<double>(f(k, T{}));
  return total;
}

// y[k] = f(k) for k in [0, n), f written once for batches and scalars as in row_sum.
template <class T, class F>
void map_row(T* y, int64_t n, F f) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = B::size;
  int64_t k = 0;
  for (; k + W <= n; k += W) f(k, B{}).store_unaligned(y + k);
  for (; k < n; ++k) y[k] = f(k, T{});
}

// The largest of a contiguous row's n values (-inf for n = 0). A NaN may or may not be returned
// when the row holds one; softmax-like callers get NaN rows either way.
template <class T>
T row_max(const T* x, int64_t n) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = B::size;
  T m = -std::numeric_limits<T>::infinity();
  int64_t k = 0;
  if (n >= W) {
    B vm = B::load_unaligned(x);
    for (k = W; k + W <= n; k += W) vm = xsimd::max(vm, B::load_unaligned(x + k));
    alignas(64) T lanes[W];
    vm.store_aligned(lanes);
    for (T v : lanes) m = std::max(m, v);
  }
  for (; k < n; ++k) m = std::max(m, x[k]);
  return m;
}

// Row helper for softmax-like ops: y[k] = exp(x[k] - shift) for a contiguous row of n values
// (y may be null when only the sum is wanted), returning sum_k y[k] (in double, as row_sum).
template <class T>
double exp_shifted_sum(const T* x, T* y, int64_t n, T shift) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = B::size;
  const int64_t body = n / W * W, r = n - body;
  // (A row shorter than a register skips row_sum: its call, not inlined, cost more than the row.)
  double total = body == 0 ? 0.0 : row_sum<T>(body, [&]<class V>(int64_t k, V) {
    V e = xsimd::exp(load<V>(x + k) - V(shift));
    if (y) {
      if constexpr (std::is_same_v<V, T>)
        y[k] = e;
      else
        e.store_unaligned(y + k);
    }
    return e;
  });
  if (r > 0) {
    // The tail (all of a row shorter than a register, such as ten class logits) as one register;
    // only its r lanes are kept and added.
#if defined(__AVX512F__)
    if constexpr (W * sizeof(T) == 64) {
      // One masked load (the other lanes hold `shift`, so they compute exp(0)), one masked store,
      // one masked sum: no round trip through memory, whose scalar stores and full-width reload
      // cost more than the exp itself on a 10-class row.
      if constexpr (std::is_same_v<T, float>) {
        const __mmask16 m = detail::lanes16(r);
        const B e =
            xsimd::exp(B(_mm512_mask_loadu_ps(_mm512_set1_ps(shift), m, x + body)) - B(shift));
        if (y) _mm512_mask_storeu_ps(y + body, m, e);
        return total + static_cast<double>(_mm512_mask_reduce_add_ps(m, e));
      } else {
        const __mmask8 m = detail::lanes8(r);
        const B e =
            xsimd::exp(B(_mm512_mask_loadu_pd(_mm512_set1_pd(shift), m, x + body)) - B(shift));
        if (y) _mm512_mask_storeu_pd(y + body, m, e);
        return total + _mm512_mask_reduce_add_pd(m, e);
      }
    }
#endif
    // Elsewhere: padded with its last value, through memory.
    alignas(64) T lanes[W];
    std::copy_n(x + body, r, lanes);
    std::fill(lanes + r, lanes + W, lanes[r - 1]);
    xsimd::exp(B::load_aligned(lanes) - B(shift)).store_aligned(lanes);
    for (int64_t k = 0; k < r; ++k) {
      total += static_cast<double>(lanes[k]);
      if (y) y[body + k] = lanes[k];
    }
  }
  return total;
}

}  // namespace ag::kernels
