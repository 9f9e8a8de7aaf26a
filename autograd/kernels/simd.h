// Internal: elementwise loops written once for SIMD batches and scalars (xsimd).
//
// map_simd<T>(out, f, in...) is kernels::map for floating T where f calls transcendental functions:
// GCC turns std::tanh or std::exp in a loop into one libm call per element, while xsimd evaluates
// them a whole register at a time. f is a generic lambda written with xsimd's functions
// (xsimd::tanh, xsimd::exp, ...), which accept both xsimd::batch<T> and T: contiguous rows run in
// batches, tails and strided rows element by element.
#pragma once

// GCC 12 reports its own AVX-512 intrinsics (_mm512_undefined_*) as "maybe uninitialized" once
// xsimd's math is inlined; the warning is about the compiler's headers, not ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>

#include "autograd/kernels/loops.h"

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
        for (; i < n; ++i) o[i] = f(reinterpret_cast<const T*>(p[I + 1])[i]...);
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

// Row helper for softmax-like ops: y[k] = exp(x[k] - shift) for a contiguous row of n values
// (y may be null when only the sum is wanted), returning sum_k y[k]. The exponentials are taken in
// T, a SIMD register at a time; the sum is kept in double, adding float partials of at most 16
// values per lane, so long rows (a 50k vocabulary) lose no accuracy to the running total.
template <class T>
double exp_shifted_sum(const T* x, T* y, int64_t n, T shift) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = B::size;
  constexpr int64_t kChunk = 16 * W;
  const B vs(shift);
  double total = 0;
  int64_t k = 0;
  for (; k + W <= n;) {
    B part(T(0));
    for (int64_t end = std::min(n - W, k + kChunk - W); k <= end; k += W) {
      B e = xsimd::exp(B::load_unaligned(x + k) - vs);
      if (y) e.store_unaligned(y + k);
      part += e;
    }
    total += static_cast<double>(xsimd::hadd(part));
  }
  for (; k < n; ++k) {
    T e = std::exp(x[k] - shift);
    if (y) y[k] = e;
    total += static_cast<double>(e);
  }
  return total;
}

}  // namespace ag::kernels
