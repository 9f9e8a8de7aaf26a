// Internal: copy, accumulate and zero short contiguous rows (an image's width: 5 to a few hundred
// values), as the convolutions' im2col and col2im do for every row of every kernel offset.
//
// A plain loop over 10 or 28 floats runs mostly in its scalar remainder, and std::fill / std::copy
// become library calls; on AVX-512 the remainder is one masked load and store instead, which never
// touches memory outside [0, n). Other machines run the plain loops.
#pragma once

#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace ag::kernels {

#if defined(__AVX512F__)
namespace detail {
// The first n (< 16) lanes.
inline __mmask16 lanes16(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
inline __mmask8 lanes8(int64_t n) { return static_cast<__mmask8>((1u << n) - 1u); }
}  // namespace detail
#endif

// dst[k] = src[k] for k in [0, n); the ranges do not overlap.
template <class T>
inline void copy_row(T* dst, const T* src, int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) _mm512_storeu_ps(dst + k, _mm512_loadu_ps(src + k));
    if (k < n) {
      const __mmask16 m = detail::lanes16(n - k);
      _mm512_mask_storeu_ps(dst + k, m, _mm512_maskz_loadu_ps(m, src + k));
    }
    return;
  } else if constexpr (std::is_same_v<T, double>) {
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) _mm512_storeu_pd(dst + k, _mm512_loadu_pd(src + k));
    if (k < n) {
      const __mmask8 m = detail::lanes8(n - k);
      _mm512_mask_storeu_pd(dst + k, m, _mm512_maskz_loadu_pd(m, src + k));
    }
    return;
  }
#endif
  for (int64_t k = 0; k < n; ++k) dst[k] = src[k];
}

// dst[k] += src[k] for k in [0, n); the ranges do not overlap.
template <class T>
inline void add_row(T* dst, const T* src, int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    int64_t k = 0;
    for (; k + 16 <= n; k += 16)
      _mm512_storeu_ps(dst + k, _mm512_add_ps(_mm512_loadu_ps(dst + k), _mm512_loadu_ps(src + k)));
    if (k < n) {
      const __mmask16 m = detail::lanes16(n - k);
      _mm512_mask_storeu_ps(
          dst + k, m,
          _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + k), _mm512_maskz_loadu_ps(m, src + k)));
    }
    return;
  } else if constexpr (std::is_same_v<T, double>) {
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
      _mm512_storeu_pd(dst + k, _mm512_add_pd(_mm512_loadu_pd(dst + k), _mm512_loadu_pd(src + k)));
    if (k < n) {
      const __mmask8 m = detail::lanes8(n - k);
      _mm512_mask_storeu_pd(
          dst + k, m,
          _mm512_add_pd(_mm512_maskz_loadu_pd(m, dst + k), _mm512_maskz_loadu_pd(m, src + k)));
    }
    return;
  }
#endif
  for (int64_t k = 0; k < n; ++k) dst[k] += src[k];
}

// dst[k] = 0 for k in [0, n).
template <class T>
inline void zero_row(T* dst, int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) _mm512_storeu_ps(dst + k, _mm512_setzero_ps());
    if (k < n) _mm512_mask_storeu_ps(dst + k, detail::lanes16(n - k), _mm512_setzero_ps());
    return;
  } else if constexpr (std::is_same_v<T, double>) {
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) _mm512_storeu_pd(dst + k, _mm512_setzero_pd());
    if (k < n) _mm512_mask_storeu_pd(dst + k, detail::lanes8(n - k), _mm512_setzero_pd());
    return;
  }
#endif
  for (int64_t k = 0; k < n; ++k) dst[k] = T(0);
}

}  // namespace ag::kernels
