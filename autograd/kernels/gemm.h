// Row-major GEMMs for the ops (matmul, linear, convolutions): C[m, n] = op(A)[m, k] @ op(B)[k, n],
// op = optional transpose, with leading dimensions, so strided and transposed operands are read in
// place. Internal to the library (not installed).
//
// Where each GEMM goes:
//   - at most kSmallWork multiply-adds: a loop of the engine's own (a library call's dispatch costs
//     more than the arithmetic at these sizes);
//   - float32: oneDNN's dnnl_sgemm, which picks its kernels by the CPU's instruction set at run
//     time (AVX2 / AVX-512 / AMX) and runs single-threaded inside an OpenMP parallel region;
//   - float64 (gradchecks, exact references, never the training hot path): OpenBLAS's cblas_dgemm,
//     whose CPU detection affects only its speed;
//   - bfloat16 operands (gemm_bf16): oneDNN's matmul primitive with bfloat16 inputs and a float32
//     result, accumulated in float32; it has kernels where the CPU has AVX512_BF16 or AMX (and
//     AVX-512 emulation); where oneDNN has none (or only its scalar reference loop), the operands
//     are widened to float32 and the float32 path runs (the same result up to the summation
//     order).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "autograd/dtype.h"

namespace ag::kernels {

// GEMMs of at most this many multiply-adds run in the engine's own loop.
inline constexpr int64_t kSmallWork = 4096;
// oneDNN sums a product with a single row or column (a dot or matrix-vector product) over the
// whole inner size in one float32 accumulator per output: measured relative errors of 1e-4 at an
// inner size of 1M and 1e-2 at 16M. Such products with a longer inner size are summed in blocks of
// this size, the blocks' results in double, by a loop of the engine's own (gemm_call).
inline constexpr int64_t kLongInner = 16384;
// Below this many multiply-adds a GEMM is never split between threads.
inline constexpr int64_t kSplitWork = int64_t(1) << 20;

// One GEMM call: C = op(A) @ op(B), or C += op(A) @ op(B) when accumulate; k > 0. Threaded by the
// library when called outside a parallel region (float32), single-threaded inside one.
void gemm_call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
               const float* b, int64_t ldb, bool accumulate, float* c, int64_t ldc);
void gemm_call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
               const double* b, int64_t ldb, bool accumulate, double* c, int64_t ldc);

// C[m, n] (float32) = op(A) @ op(B) with A and B in bfloat16, k > 0; threaded by oneDNN outside a
// parallel region.
void gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16* a, int64_t lda,
               const bf16* b, int64_t ldb, float* c, int64_t ldc);
// The same with C in bfloat16: accumulated in float32, rounded once as it is written.
void gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16* a, int64_t lda,
               const bf16* b, int64_t ldb, bf16* c, int64_t ldc);
// How gemm_bf16 runs: "onednn" (a bfloat16 kernel of oneDNN's) or "float32" (the fallback), as
// decided for this CPU. force_bf16_fallback(true) makes it take the fallback (tests).
const char* bf16_gemm_path();
void force_bf16_fallback(bool on);

// Threads a GEMM may cut itself into: 1 inside a parallel region. float64 GEMMs are never cut:
// OpenBLAS threads them itself, and with its pthread build a call per block would start threads of
// its own inside each block.
template <class T>
int available_threads() {
  if constexpr (std::is_same_v<T, double>) return 1;
  return omp_in_parallel() ? 1 : omp_get_max_threads();
}

// One GEMM: C[m, n] = op(A)[m, k] @ op(B)[k, n] (+ bias[n] on every row), k > 0.
//
// Medium float32 GEMMs (the sizes of a training step: batch 64..1024, widths 128..1024) are cut
// into one block of rows or columns per OpenMP thread, each block one single-threaded call; this
// lets linear's two backward GEMMs share the threads (gemm_pair). Rows are cut when m >= n or the
// inner size k is below m (weight gradients: k is the batch), columns otherwise; block edges fall
// on multiples of 16 rows or columns. A bias is written into each block by the thread that then
// accumulates the block's product onto it.
template <class T>
struct Gemm {
  bool ta, tb;
  int64_t m, n, k;
  const T* a;
  int64_t lda;
  const T* b;
  int64_t ldb;
  T* c;
  int64_t ldc;
  const T* bias = nullptr;
  // When set, also row_sums[i] = sum over p of op(A)[i, p] for every row i of C, written by the
  // block that holds the row's first column (summed in double for float). For a weight gradient
  // gw = g^T @ x these are the bias gradient's entries, computed where g's columns already are.
  T* row_sums = nullptr;
  // When set, C is clamped at zero (ReLU; linear_relu's forward): each block by the thread that
  // computed it, while the block is still in that thread's cache, or all of a small C by the
  // calling thread after the blocks (relu_after).
  bool relu = false;

  bool by_rows() const { return m >= n || k < m; }
  // A product of a few rows by a wide matrix (a matrix-vector product, as in one generated token's
  // forward): it reads the whole of B once for little arithmetic, so memory, not the FMA units,
  // sets its speed.
  bool thin() const { return m <= kThinRows && !by_rows(); }
  // How many blocks are worth running in parallel, at most `threads`.
  int blocks(int threads) const {
    if (m * n * k < kSplitWork) return 1;
    return int(std::clamp<int64_t>((by_rows() ? m : n) / (2 * kBlock), 1, threads));
  }
  // Block t of nt, on the calling thread.
  void run_block(int64_t t, int64_t nt) const {
    const int64_t split = by_rows() ? m : n, units = (split + kBlock - 1) / kBlock;
    const int64_t lo = std::min(split, units * t / nt * kBlock);
    const int64_t hi = std::min(split, units * (t + 1) / nt * kBlock);
    if (hi > lo) by_rows() ? run(lo, hi, 0, n) : run(0, m, lo, hi);
  }
  // Rows r0..r1, columns c0..c1 of C.
  void run(int64_t r0, int64_t r1, int64_t c0, int64_t c1) const {
    if (bias)
      for (int64_t r = r0; r < r1; ++r) std::copy(bias + c0, bias + c1, c + r * ldc + c0);
    gemm_call(ta, tb, r1 - r0, c1 - c0, k, ta ? a + r0 : a + r0 * lda, lda,
              tb ? b + c0 * ldb : b + c0, ldb, bias != nullptr, c + r0 * ldc + c0, ldc);
    if (row_sums && c0 == 0) sum_rows_of_a(r0, r1);
    if (relu) clamp(r0, r1, c0, c1);
  }
  // C[r0..r1, c0..c1] = max(C, 0).
  void clamp(int64_t r0, int64_t r1, int64_t c0, int64_t c1) const {
    for (int64_t r = r0; r < r1; ++r) {
      T* __restrict row = c + r * ldc;
      for (int64_t j = c0; j < c1; ++j) row[j] = row[j] > T(0) ? row[j] : T(0);
    }
  }
  // Whether a split GEMM's ReLU runs on the calling thread after the blocks: for an output that
  // fits in a core's cache, the next op (which reads all of it on every thread) ran faster when
  // one thread had clamped all of it than when each held the half it had clamped (mlp784's layer
  // [64, 256] @ [256, 256]: 49.4 -> 40.1 us, docs/performance.md); a large output is clamped
  // block by block, where it is still in the cache of the thread that computed it.
  bool relu_after() const { return m * n <= kReluAfter; }
  // row_sums[r0..r1) from op(A), a chunk of rows at a time in a double (or wider) accumulator.
  void sum_rows_of_a(int64_t r0, int64_t r1) const {
    using Acc = std::conditional_t<std::is_same_v<T, float>, double, T>;
    constexpr int64_t kChunk = 128;
    for (int64_t lo = r0; lo < r1; lo += kChunk) {
      const int64_t hi = std::min(r1, lo + kChunk);
      Acc acc[kChunk] = {};
      if (ta) {  // op(A)[i, p] = a[p * lda + i]: rows of `a` added across
        for (int64_t p = 0; p < k; ++p) {
          const T* __restrict src = a + p * lda + lo;
          for (int64_t i = 0; i < hi - lo; ++i) acc[i] += Acc(src[i]);
        }
      } else {  // op(A)[i, p] = a[i * lda + p]: each row of `a` reduced
        for (int64_t i = lo; i < hi; ++i)
          for (int64_t p = 0; p < k; ++p) acc[i - lo] += Acc(a[i * lda + p]);
      }
      for (int64_t i = lo; i < hi; ++i) row_sums[i] = T(acc[i - lo]);
    }
  }
  static constexpr int64_t kBlock = 16;
  static constexpr int64_t kReluAfter = int64_t(1) << 16;
  static constexpr int64_t kThinRows = 8;
  // A thin GEMM's columns are cut into this many blocks per thread, which the threads take in
  // turn as each finishes its last: the threads' pace through memory differs on shared machines,
  // and equal halves left the faster one waiting (GPT-2 small, one generated token: 17.7 -> 16.8
  // ms, 5 alternating runs, docs/performance.md).
  static constexpr int kThinBlocksPerThread = 4;
};

// Runs g, cut into blocks over the available threads when it is large enough.
template <class T>
void gemm(const Gemm<T>& g) {
  const int blocks = g.blocks(available_threads<T>());
  if (blocks < 2) return g.run(0, g.m, 0, g.n);
  if (g.thin()) {
    const int64_t pieces = int64_t(blocks) * Gemm<T>::kThinBlocksPerThread;
#pragma omp parallel for schedule(dynamic) num_threads(blocks)
    for (int64_t t = 0; t < pieces; ++t) g.run_block(t, pieces);
    return;
  }
  // A small output is clamped by the calling thread after the region rather than by each block's
  // thread (see relu_after).
  Gemm<T> blocked = g;
  blocked.relu = g.relu && !g.relu_after();
#pragma omp parallel num_threads(blocks)
  blocked.run_block(omp_get_thread_num(), omp_get_num_threads());
  if (g.relu && g.relu_after()) g.clamp(0, g.m, 0, g.n);
}

template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
          int64_t ldb, T* c, int64_t ldc, const T* bias = nullptr) {
  gemm(Gemm<T>{ta, tb, m, n, k, a, lda, b, ldb, c, ldc, bias});
}

// Two independent GEMMs (a linear layer's input and weight gradients) at once, the team of threads
// shared between them: on 2 cores each runs whole on one core, which measured 10-15 us faster per
// mlp784 step than splitting each in turn. Small pairs run one after the other.
template <class T>
void gemm_pair(const Gemm<T>& x, const Gemm<T>& y) {
  const int threads = available_threads<T>();
  if (threads < 2 || x.blocks(threads) < 2 || y.blocks(threads) < 2) {
    gemm(x);
    gemm(y);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads(), half = nt / 2;
    if (nt < 2) {
      x.run_block(0, 1);
      y.run_block(0, 1);
    } else if (t < half) {
      x.run_block(t, half);
    } else {
      y.run_block(t - half, nt - half);
    }
  }
}

}  // namespace ag::kernels
