#include "autograd/kernels/gemm.h"
#include "autograd/node.h"

#include <cblas.h>
#include <dnnl.h>

#include <algorithm>
#include <vector>

#include "autograd/error.h"

namespace ag::kernels {

namespace {

// C = op(A) @ op(B) (+ C when accumulate), a plain loop that GCC vectorises along C's rows. A
// transposed B is first copied into row order so the innermost loop reads it contiguously.
template <class T>
void small_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
                const T* b, int64_t ldb, bool accumulate, T* c, int64_t ldc) {
  T b_rows[kSmallWork];
  if (tb) {
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j) b_rows[p * n + j] = b[j * ldb + p];
    b = b_rows;
    ldb = n;
  }
  for (int64_t i = 0; i < m; ++i) {
    T* __restrict row = c + i * ldc;
    if (!accumulate) std::fill(row, row + n, T(0));
    for (int64_t p = 0; p < k; ++p) {
      const T aip = ta ? a[p * lda + i] : a[i * lda + p];
      const T* __restrict bp = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) row[j] += aip * bp[j];
    }
  }
}

// sum over p < k of x[p * sx] * y[p * sy]: float32 partial sums over blocks of kLongInner (in
// SIMD lanes when both are contiguous), the blocks summed in double.
double long_dot(const float* x, int64_t sx, const float* y, int64_t sy, int64_t k) {
  double total = 0;
  for (int64_t p0 = 0; p0 < k; p0 += kLongInner) {
    const int64_t p1 = std::min(k, p0 + kLongInner);
    float part = 0;
    if (sx == 1 && sy == 1) {
#pragma omp simd reduction(+ : part)
      for (int64_t p = p0; p < p1; ++p) part += x[p] * y[p];
    } else {
      for (int64_t p = p0; p < p1; ++p) part += x[p * sx] * y[p * sy];
    }
    total += part;
  }
  return total;
}

// out[j] = sum over p < k of x[p * sx] * y[p * sy + j], j < n: the rows of y scaled and added into
// float32 partial sums over blocks of kLongInner, the blocks summed in double.
void long_axpy(const float* x, int64_t sx, const float* y, int64_t sy, int64_t n, int64_t k,
               double* out) {
  std::vector<float> part(static_cast<size_t>(n));
  std::fill(out, out + n, 0.0);
  for (int64_t p0 = 0; p0 < k; p0 += kLongInner) {
    std::fill(part.begin(), part.end(), 0.0f);
    float* __restrict acc = part.data();
    for (int64_t p = p0; p < std::min(k, p0 + kLongInner); ++p) {
      const float xp = x[p * sx];
      const float* __restrict row = y + p * sy;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) acc[j] += xp * row[j];
    }
    for (int64_t j = 0; j < n; ++j) out[j] += part[static_cast<size_t>(j)];
  }
}

// A product with one row or one column of output (a dot or matrix-vector product) whose inner size
// exceeds kLongInner, summed in blocks (long_dot, long_axpy) rather than by oneDNN.
void long_inner_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                     const float* b, int64_t ldb, bool accumulate, float* c, int64_t ldc) {
  std::vector<double> r(static_cast<size_t>(m * n));
  if (m == 1) {  // c[0, j] = op(A) row 0 . op(B) column j
    const int64_t sa = ta ? lda : 1;
    if (tb || n == 1)
      for (int64_t j = 0; j < n; ++j)
        r[static_cast<size_t>(j)] = long_dot(a, sa, tb ? b + j * ldb : b + j, tb ? 1 : ldb, k);
    else
      long_axpy(a, sa, b, ldb, n, k, r.data());
  } else {  // n == 1: c[i, 0] = op(A) row i . op(B) column 0
    const int64_t sb = tb ? 1 : ldb;
    if (ta)
      long_axpy(b, sb, a, lda, m, k, r.data());
    else
      for (int64_t i = 0; i < m; ++i)
        r[static_cast<size_t>(i)] = long_dot(a + i * lda, 1, b, sb, k);
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float& out = c[i * ldc + j];
      out = static_cast<float>(r[static_cast<size_t>(i * n + j)] + (accumulate ? out : 0.0f));
    }
}

}  // namespace

void gemm_call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
               const float* b, int64_t ldb, bool accumulate, float* c, int64_t ldc) {
  if (m * n * k <= kSmallWork)
    return small_gemm(ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
  if ((m == 1 || n == 1) && k > kLongInner)
    return long_inner_gemm(ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
  const dnnl_status_t status = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b,
                                          ldb, accumulate ? 1.0f : 0.0f, c, ldc);
  if (status != dnnl_success)
    fail("gemm: oneDNN sgemm [{}, {}] @ [{}, {}] failed with status {}", m, k, k, n, int(status));
}

void gemm_call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
               const double* b, int64_t ldb, bool accumulate, double* c, int64_t ldc) {
  if (m * n * k <= kSmallWork)
    return small_gemm(ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m),
              int(n), int(k), 1.0, a, int(lda), b, int(ldb), accumulate ? 1.0 : 0.0, c, int(ldc));
}

}  // namespace ag::kernels
