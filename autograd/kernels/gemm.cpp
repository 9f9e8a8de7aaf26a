#include "autograd/kernels/gemm.h"
#include "autograd/node.h"

#include <cblas.h>
#include <dnnl.h>

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

}  // namespace

void gemm_call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
               const float* b, int64_t ldb, bool accumulate, float* c, int64_t ldc) {
  if (m * n * k <= kSmallWork)
    return small_gemm(ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
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
