// Internal: the strided loop under every elementwise op and reduction.
//
// N operands (operand 0 is the output) are viewed with the output's shape: an operand broadcast
// along an axis gets stride 0 there. Axes that are contiguous for every operand are merged, so a
// contiguous tensor of any rank is walked as one flat row. The body is called once per innermost
// row with the row's pointers and byte strides; above a grain size rows (or pieces of one long row)
// are split over OpenMP threads.
#pragma once

#include <omp.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "autograd/tensor.h"

namespace ag::kernels {

inline constexpr int64_t kParallelGrain = 1 << 15;  // elements per thread, at least

// body(i) for i in [0, n): split over the OpenMP threads when `parallel` (and not already inside a
// parallel region), else a plain loop. Unlike `omp parallel for if (...)`, whose false branch
// still opens a one-thread region (about 2 us a call, measured in the loss of an mlp784 step), a
// small loop here opens none.
template <class F>
void parallel_for(int64_t n, bool parallel, F&& body) {
  if (!parallel || omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) body(i);
}

template <int N>
struct Loop {
  int64_t ndim = 0;
  int64_t size[kMaxDims];
  int64_t stride[N][kMaxDims];  // bytes
  char* base[N];
  int64_t numel = 1;
};

// Strides of `t` seen with shape `shape` (NumPy broadcasting: missing leading axes and size-1 axes
// get stride 0). The caller has checked that the shapes broadcast.
inline void broadcast_strides(const TensorImpl& t, const Shape& shape, int64_t* out) {
  int64_t lead = shape.size() - t.shape.size();
  int64_t item = static_cast<int64_t>(itemsize(t.dtype));
  for (int64_t i = 0; i < shape.size(); ++i) {
    int64_t j = i - lead;
    out[i] = (j < 0 || t.shape[j] == 1) ? 0 : t.strides[j] * item;
  }
}

inline char* base_ptr(const TensorImpl& t) {
  return static_cast<char*>(t.storage->data) + t.offset * static_cast<int64_t>(itemsize(t.dtype));
}

template <int N>
Loop<N> make_loop(const Shape& shape, const std::array<const TensorImpl*, N>& ops) {
  Loop<N> L;
  int64_t st[N][kMaxDims];
  for (int k = 0; k < N; ++k) {
    broadcast_strides(*ops[k], shape, st[k]);
    L.base[k] = base_ptr(*ops[k]);
  }
  // Drop size-1 axes, then merge axis i into i+1 when every operand is contiguous across them.
  int64_t n = 0;
  for (int64_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (n > 0) {
      bool merge = true;
      for (int k = 0; k < N && merge; ++k) merge = L.stride[k][n - 1] == st[k][i] * shape[i];
      if (merge) {
        L.size[n - 1] *= shape[i];
        for (int k = 0; k < N; ++k) L.stride[k][n - 1] = st[k][i];
        continue;
      }
    }
    L.size[n] = shape[i];
    for (int k = 0; k < N; ++k) L.stride[k][n] = st[k][i];
    ++n;
  }
  if (n == 0) {  // scalar
    L.size[0] = 1;
    for (int k = 0; k < N; ++k) L.stride[k][0] = 0;
    n = 1;
  }
  L.ndim = n;
  L.numel = shape.numel();
  return L;
}

// Calls body(ptrs, strides, count) for rows [row_begin, row_end) of the loop's outer index space.
template <int N, class Body>
void run_rows(const Loop<N>& L, int64_t row_begin, int64_t row_end, Body& body) {
  const int64_t inner = L.size[L.ndim - 1];
  int64_t inner_stride[N];
  for (int k = 0; k < N; ++k) inner_stride[k] = L.stride[k][L.ndim - 1];
  int64_t idx[kMaxDims] = {};
  // Decompose row_begin into an index over the outer axes.
  int64_t r = row_begin;
  for (int64_t d = L.ndim - 2; d >= 0; --d) {
    idx[d] = r % L.size[d];
    r /= L.size[d];
  }
  char* p[N];
  for (int k = 0; k < N; ++k) {
    p[k] = L.base[k];
    for (int64_t d = 0; d + 1 < L.ndim; ++d) p[k] += idx[d] * L.stride[k][d];
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    body(p, inner_stride, inner);
    // advance the outer index
    for (int64_t d = L.ndim - 2; d >= 0; --d) {
      if (++idx[d] < L.size[d]) {
        for (int k = 0; k < N; ++k) p[k] += L.stride[k][d];
        break;
      }
      for (int k = 0; k < N; ++k) p[k] -= (L.size[d] - 1) * L.stride[k][d];
      idx[d] = 0;
    }
  }
}

// Runs body over every row; `parallel` allows OpenMP splitting (false when the output is reduced
// into, so that two threads never write the same element).
template <int N, class Body>
void for_each_row(const Loop<N>& L, Body body, bool parallel = true) {
  const int64_t inner = L.size[L.ndim - 1];
  const int64_t rows = L.numel / (inner ? inner : 1);
  if (L.numel == 0) return;
  int threads = 1;
  if (parallel && L.numel >= 2 * kParallelGrain && !omp_in_parallel())
    threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), L.numel / kParallelGrain));
  if (threads <= 1) {
    run_rows(L, 0, rows, body);
    return;
  }
  if (rows >= threads) {
#pragma omp parallel num_threads(threads)
    {
      int t = omp_get_thread_num(), nt = omp_get_num_threads();
      int64_t b = rows * t / nt, e = rows * (t + 1) / nt;
      run_rows(L, b, e, body);
    }
    return;
  }
  // Few long rows: split each row into pieces, unless the output is reduced along the row (stride
  // 0): then every piece would read-modify-write the same output element.
  if (L.stride[0][L.ndim - 1] == 0) {
    run_rows(L, 0, rows, body);
    return;
  }
  // Few long rows: split each row into pieces.
  for (int64_t row = 0; row < rows; ++row) {
#pragma omp parallel num_threads(threads)
    {
      int t = omp_get_thread_num(), nt = omp_get_num_threads();
      int64_t b = inner * t / nt, e = inner * (t + 1) / nt;
      Loop<N> piece = L;
      piece.ndim = 1;
      piece.size[0] = e - b;
      for (int k = 0; k < N; ++k) {
        char* p = L.base[k];
        int64_t r = row;
        for (int64_t d = L.ndim - 2; d >= 0; --d) {
          p += (r % L.size[d]) * L.stride[k][d];
          r /= L.size[d];
        }
        piece.base[k] = p + b * L.stride[k][L.ndim - 1];
        piece.stride[k][0] = L.stride[k][L.ndim - 1];
      }
      piece.numel = e - b;
      Body local = body;
      run_rows(piece, 0, 1, local);
    }
  }
}

// Calls g.template operator()<M>() with M == m, for m in [0, 2^K): turns a runtime bit mask into a
// compile-time one.
template <size_t K, class G>
void with_mask(unsigned m, G&& g) {
  [&]<size_t... M>(std::index_sequence<M...>) {
    (void)((m == M ? (g.template operator()<M>(), true) : false) || ...);
  }
  (std::make_index_sequence<(size_t{1} << K)>{});
}

// How an operand is loaded in vectorised loops: bool masks as bytes (GCC does not vectorise loads
// of bool, whose values it must assume are 0 or 1; a byte compared with zero it does).
template <class T>
using Load = std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>;

// out[i] = f(in0[i], in1[i], ...) for typed operands, `out` already allocated with the result
// shape. Inputs broadcast against out's shape. Rows where every operand is either contiguous or a
// single broadcast value (stride 0) take a loop the compiler vectorises; the broadcast pattern is a
// compile-time mask, so `x * scalar` or `where(mask, g, 0)` vectorise like `x * y`.
template <class Out, class... In, class F, class... Ts>
void map(const Tensor& out, F f, const Ts&... in) {
  constexpr int N = 1 + sizeof...(In);
  constexpr size_t K = sizeof...(In);
  auto L = make_loop<N>(out.shape(), {out.impl(), in.impl()...});
  for_each_row(L, [f](char** p, const int64_t* s, int64_t n) {
    constexpr int64_t so = sizeof(Out);
    bool dense = s[0] == so;
    unsigned mask = 0;
    [&]<size_t... I>(std::index_sequence<I...>) {
      ((dense = dense && (s[I + 1] == static_cast<int64_t>(sizeof(In)) || s[I + 1] == 0),
        mask |= (s[I + 1] == 0 ? 1u : 0u) << I),
       ...);
    }
    (std::index_sequence_for<In...>{});
    Out* o = reinterpret_cast<Out*>(p[0]);
    if (dense && (K <= 3 || mask == 0)) {
      with_mask<(K <= 3 ? K : 0)>(mask, [&]<size_t M>() {
        [&]<size_t... I>(std::index_sequence<I...>) {
          std::tuple<const Load<In>*...> ins{reinterpret_cast<const Load<In>*>(p[I + 1])...};
          for (int64_t i = 0; i < n; ++i)
            o[i] = f(static_cast<In>(std::get<I>(ins)[((M >> I) & 1) ? 0 : i])...);
        }
        (std::index_sequence_for<In...>{});
      });
    } else {
      [&]<size_t... I>(std::index_sequence<I...>) {
        for (int64_t i = 0; i < n; ++i)
          *reinterpret_cast<Out*>(p[0] + i * s[0]) =
              f(*reinterpret_cast<const In*>(p[I + 1] + i * s[I + 1])...);
      }
      (std::index_sequence_for<In...>{});
    }
  });
}

}  // namespace ag::kernels
