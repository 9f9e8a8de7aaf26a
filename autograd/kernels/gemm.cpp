#include "autograd/kernels/gemm.h"
#include "autograd/node.h"

#include <cblas.h>
#include <dnnl.h>

#include <atomic>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string_view>
#include <tuple>

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

// ---- bfloat16 operands ----------------------------------------------------------------------

namespace {

std::atomic<bool> g_force_fallback{false};

// The shape and layout of one bfloat16 GEMM: the key of its oneDNN primitive.
// (the last: C is bfloat16, else float32).
using Bf16Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// A [rows, cols] matrix read row-major with leading dimension ld, or transposed.
dnnl::memory::desc matrix_desc(int64_t rows, int64_t cols, dnnl::memory::data_type dt, bool trans,
                               int64_t ld) {
  return dnnl::memory::desc({rows, cols}, dt,
                            trans ? dnnl::memory::dims{1, ld} : dnnl::memory::dims{ld, 1});
}

// The primitive for `key`, made once (null when oneDNN has no bfloat16 kernel for this CPU).
const dnnl::matmul* bf16_primitive(const Bf16Key& key) {
  static std::mutex mutex;
  static std::map<Bf16Key, std::unique_ptr<dnnl::matmul>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second.get();
  auto [ta, tb, m, n, k, lda, ldb, ldc, out_bf16] = key;
  using dt = dnnl::memory::data_type;
  std::unique_ptr<dnnl::matmul> p;
  try {
    dnnl::matmul::desc d(matrix_desc(m, k, dt::bf16, ta, lda), matrix_desc(k, n, dt::bf16, tb, ldb),
                         matrix_desc(m, n, out_bf16 ? dt::bf16 : dt::f32, false, ldc));
    dnnl::matmul::primitive_desc pd(d, cpu_engine());
    // oneDNN's reference implementation ("ref:any") serves any CPU, a scalar loop far slower than
    // the float32 GEMM: take the float32 fallback instead.
    if (std::string_view(pd.impl_info_str()).substr(0, 3) != "ref")
      p = std::make_unique<dnnl::matmul>(pd);
  } catch (const dnnl::error&) {
    p.reset();  // unimplemented on this CPU: the float32 fallback
  }
  if (cache.size() > 4096) cache.clear();
  return (cache[key] = std::move(p)).get();
}

// op(X) of a bfloat16 matrix widened to a row-major float32 copy [rows, cols].
std::vector<float> widen(const bf16* x, bool trans, int64_t rows, int64_t cols, int64_t ld) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      out[static_cast<size_t>(i * cols + j)] = trans ? float(x[j * ld + i]) : float(x[i * ld + j]);
  return out;
}

}  // namespace

const char* bf16_gemm_path() {
  if (g_force_fallback) return "float32";
  return bf16_primitive({false, false, 64, 64, 64, 64, 64, 64, false}) ? "onednn" : "float32";
}

void force_bf16_fallback(bool on) { g_force_fallback = on; }

namespace {

// Runs the oneDNN primitive of this product if there is one; false if not (then nothing ran).
bool run_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16* a, int64_t lda,
              const bf16* b, int64_t ldb, void* c, int64_t ldc, bool out_bf16) {
  const dnnl::matmul* p =
      g_force_fallback ? nullptr : bf16_primitive({ta, tb, m, n, k, lda, ldb, ldc, out_bf16});
  if (!p) return false;
  using dt = dnnl::memory::data_type;
  dnnl::engine& e = cpu_engine();
  dnnl::memory ma(matrix_desc(m, k, dt::bf16, ta, lda), e, const_cast<bf16*>(a));
  dnnl::memory mb(matrix_desc(k, n, dt::bf16, tb, ldb), e, const_cast<bf16*>(b));
  dnnl::memory mc(matrix_desc(m, n, out_bf16 ? dt::bf16 : dt::f32, false, ldc), e, c);
  dnnl::stream s(e);
  p->execute(s, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
  s.wait();
  return true;
}

}  // namespace

void gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16* a, int64_t lda,
               const bf16* b, int64_t ldb, float* c, int64_t ldc) {
  if (run_bf16(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, false)) return;
  std::vector<float> fa = widen(a, ta, m, k, lda), fb = widen(b, tb, k, n, ldb);
  gemm(false, false, m, n, k, fa.data(), k, fb.data(), n, c, ldc);
}

void gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16* a, int64_t lda,
               const bf16* b, int64_t ldb, bf16* c, int64_t ldc) {
  if (run_bf16(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, true)) return;
  std::vector<float> fc(static_cast<size_t>(m * n));
  gemm_bf16(ta, tb, m, n, k, a, lda, b, ldb, fc.data(), n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = bf16(fc[static_cast<size_t>(i * n + j)]);
}

}  // namespace ag::kernels
