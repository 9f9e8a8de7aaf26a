// Internal: one output row of a 2x2 max-pool with stride 2 and no padding (the pooling of LeNet and
// most CNNs), values and positions.
//
// Output j of the row looks at the input pairs r0[2j], r0[2j+1] (top row) and r1[2j], r1[2j+1]
// (row below), in that (row-major) order; a candidate replaces the best so far when it is larger,
// or when it is NaN and the best is not, so the first maximum wins and a NaN propagates. best[j] is
// the winner, at[j] = base + 2j + its offset (0, 1, W or W + 1: `base` is the position of the
// window row's first element in its plane, W the plane's width).
//
// On AVX-512, float rows run 16 outputs a register at a time (pairs split with permutes, the tail
// with masks); other types and machines run the same comparisons one output at a time, without
// branches (per-element branches mispredict on random data).
#pragma once

#include <bit>
#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__)
// As in simd.h: GCC 12 reports its own AVX-512 intrinsics (_mm512_undefined_*) as "maybe
// uninitialized" once they are inlined; the warning is about the compiler's headers, not ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#endif

namespace ag::kernels {

// take ? a : b through the bits, so that no branch is emitted (GCC turns a float ?: into a jump).
template <class T>
inline T select_bits(bool take, T a, T b) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  const U mask = U(0) - U(take);
  return std::bit_cast<T>(U((std::bit_cast<U>(a) & mask) | (std::bit_cast<U>(b) & ~mask)));
}

template <class T>
inline void max_pool_2x2_row_scalar(const T* r0, const T* r1, T* best, int64_t* at, int64_t j0,
                                    int64_t OW, int64_t base, int64_t W) {
  for (int64_t j = j0; j < OW; ++j) {
    T m = r0[2 * j];
    int64_t off = 0;
    auto consider = [&](T c, int64_t c_off) {
      const bool t = (c > m) | ((c != c) & (m == m));
      const int64_t mask = -int64_t(t);
      m = select_bits(t, c, m);
      off = (off & ~mask) | (c_off & mask);
    };
    consider(r0[2 * j + 1], 1);
    consider(r1[2 * j], W);
    consider(r1[2 * j + 1], W + 1);
    best[j] = m;
    at[j] = base + 2 * j + off;
  }
}

template <class T>
inline void max_pool_2x2_row(const T* r0, const T* r1, T* best, int64_t* at, int64_t OW,
                             int64_t base, int64_t W) {
  int64_t j = 0;
#if defined(__AVX512F__)
  // Offsets go through 32-bit lanes: planes at most 2^30 wide (any real image).
  if constexpr (std::is_same_v<T, float>) {
    if (W >= (int64_t(1) << 30)) return max_pool_2x2_row_scalar(r0, r1, best, at, j, OW, base, W);
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i two_j = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);  // 2j of lanes 0..7
    for (; j < OW; j += 16) {
      const int64_t n = OW - j < 16 ? OW - j : 16;  // outputs in this register
      const int64_t in = 2 * n;                     // inputs per row
      const __mmask16 m_lo = static_cast<__mmask16>(in >= 16 ? 0xFFFF : (1u << in) - 1u);
      const __mmask16 m_hi = static_cast<__mmask16>(in <= 16 ? 0 : (1u << (in - 16)) - 1u);
      const __m512 t_lo = _mm512_maskz_loadu_ps(m_lo, r0 + 2 * j);
      const __m512 t_hi = _mm512_maskz_loadu_ps(m_hi, r0 + 2 * j + 16);
      const __m512 b_lo = _mm512_maskz_loadu_ps(m_lo, r1 + 2 * j);
      const __m512 b_hi = _mm512_maskz_loadu_ps(m_hi, r1 + 2 * j + 16);
      __m512 m = _mm512_permutex2var_ps(t_lo, even, t_hi);
      __m512i off = _mm512_setzero_si512();
      auto consider = [&](__m512 c, int c_off) {
        const __mmask16 t =
            _mm512_cmp_ps_mask(c, m, _CMP_GT_OQ) |
            (_mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(m, m, _CMP_ORD_Q));
        m = _mm512_mask_blend_ps(t, m, c);
        off = _mm512_mask_blend_epi32(t, off, _mm512_set1_epi32(c_off));
      };
      consider(_mm512_permutex2var_ps(t_lo, odd, t_hi), 1);
      consider(_mm512_permutex2var_ps(b_lo, even, b_hi), int(W));
      consider(_mm512_permutex2var_ps(b_lo, odd, b_hi), int(W + 1));
      const __mmask16 out = static_cast<__mmask16>(n == 16 ? 0xFFFF : (1u << n) - 1u);
      _mm512_mask_storeu_ps(best + j, out, m);
      const __m512i first = _mm512_add_epi64(_mm512_set1_epi64(base + 2 * j), two_j);
      const __m512i second = _mm512_add_epi64(first, _mm512_set1_epi64(16));
      _mm512_mask_storeu_epi64(
          at + j, static_cast<__mmask8>(out & 0xFF),
          _mm512_add_epi64(first, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(off))));
      _mm512_mask_storeu_epi64(
          at + j + 8, static_cast<__mmask8>(out >> 8),
          _mm512_add_epi64(second, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(off, 1))));
    }
    return;
  }
#endif
  max_pool_2x2_row_scalar(r0, r1, best, at, j, OW, base, W);
}

}  // namespace ag::kernels
