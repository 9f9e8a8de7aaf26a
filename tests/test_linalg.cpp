// matmul (1-D, 2-D, batched with broadcast batch axes, strided operands), outer and the fused
// linear: values against a naive triple loop in float64 and float32, first and second derivatives
// (float64 gradcheck and gradgradcheck), and errors naming both shapes.
#include <omp.h>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::leaf;
using test::values;

namespace {

// Naive [m, k] @ [k, n] on contiguous float64 data.
std::vector<double> naive(const std::vector<double>& a, const std::vector<double>& b, int64_t m,
                          int64_t k, int64_t n) {
  std::vector<double> c(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol).scale(1.0));
  }
}

}  // namespace

TEST_CASE("2-D matmul against a naive loop, float64 and float32, with strided operands") {
  Tensor a = leaf({5, 7}, -1, 1, 1).detach(), b = leaf({7, 3}, -1, 1, 2).detach();
  auto want = naive(values(a), values(b), 5, 7, 3);
  check_close(values(matmul(a, b)), want, 1e-13);
  check_close(values(matmul(a.to(float32), b.to(float32))), want, 1e-5);
  CHECK(matmul(a.to(float32), b.to(float32)).dtype() == float32);
  // Transposed views go to BLAS with transpose flags: same values.
  Tensor at = a.t().contiguous().t(), bt = b.t().contiguous().t();
  CHECK_FALSE(at.is_contiguous());
  check_close(values(matmul(at, bt)), want, 1e-13);
  // A column slice (leading dimension larger than the width).
  Tensor wide = leaf({7, 6}, -1, 1, 3).detach();
  Tensor cols = slice(wide, 1, 1, 4);
  check_close(values(matmul(a, cols)), naive(values(a), values(cols.contiguous()), 5, 7, 3), 1e-13);
  // Every other row: not BLAS-compatible without a copy, still right.
  Tensor rows = slice(leaf({14, 3}, -1, 1, 4).detach(), 0, 0, 14, 2);
  check_close(values(matmul(a, rows)), naive(values(a), values(rows.contiguous()), 5, 7, 3), 1e-13);
  // Mixed float32/float64 promotes.
  CHECK(matmul(a.to(float32), b).dtype() == float64);
}

TEST_CASE("GEMMs of every size class give the naive loop's values") {
  // Up to 4096 multiply-adds a GEMM runs in the engine's own loop, above that in oneDNN (float32)
  // or OpenBLAS (float64); above ~1M multiply-adds it is split into blocks of rows or columns, one
  // per thread. Sizes on both sides of each limit, sizes not a multiple of the block, every
  // transpose combination and column slices (leading dimension wider than the block) must all
  // land in the right place.
  struct Case {
    int64_t m, k, n;
  };
  for (Case c : {Case{1, 1, 1}, Case{8, 2, 16}, Case{3, 7, 2}, Case{16, 16, 16}, Case{16, 17, 16},
                 Case{1, 4097, 1}, Case{70, 300, 130}, Case{300, 40, 257}, Case{64, 784, 256},
                 Case{256, 64, 784}, Case{33, 500, 300}}) {
    CAPTURE(c.m);
    CAPTURE(c.k);
    CAPTURE(c.n);
    Tensor a = leaf({c.m, c.k}, -1, 1, 11).detach(), b = leaf({c.k, c.n}, -1, 1, 12).detach();
    auto want = naive(values(a), values(b), c.m, c.k, c.n);
    Tensor at = a.t().contiguous().t(), bt = b.t().contiguous().t();
    for (auto [x, y] : {std::pair{a, b}, std::pair{at, b}, std::pair{a, bt}, std::pair{at, bt}}) {
      check_close(values(matmul(x, y)), want, 1e-12);
      check_close(values(matmul(x.to(float32), y.to(float32))), want, 1e-4);
    }
    // A column slice of a wider matrix as the right operand, and linear's x W^T form.
    Tensor wide = leaf({c.k, c.n + 5}, -1, 1, 13).detach();
    Tensor cols = slice(wide, 1, 2, c.n + 2);
    check_close(values(matmul(a, cols)), naive(values(a), values(cols.contiguous()), c.m, c.k, c.n),
                1e-12);
    check_close(values(linear(a, bt.t())), want, 1e-12);
    // With a bias (added while short, wide blocks are copied back from their transposed product).
    Tensor bias = leaf({c.n}, -1, 1, 14).detach();
    std::vector<double> with_bias = want, bv = values(bias);
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) with_bias[i * c.n + j] += bv[j];
    check_close(values(linear(a, bt.t(), bias)), with_bias, 1e-12);
    check_close(values(linear(a.to(float32), bt.t().to(float32), bias.to(float32))), with_bias,
                1e-4);
  }
}

TEST_CASE("linear's input and weight gradients computed together match the naive products") {
  // Plain backward computes g @ W and g^T @ x as one paired run (each on part of the threads) when
  // both are needed; create_graph takes the differentiable matmul path. Sizes large enough to be
  // paired, with a transposed weight and 3-D input among them.
  for (bool transposed_w : {false, true}) {
    CAPTURE(transposed_w);
    Tensor x = leaf({2, 35, 300}, -1, 1, 21).detach().requires_grad_();
    Tensor w0 = leaf({130, 300}, -1, 1, 22).detach();
    Tensor w = (transposed_w ? w0.t().contiguous().t() : w0).requires_grad_();
    Tensor b = leaf({130}, -1, 1, 23).detach().requires_grad_();
    Tensor g = leaf({2, 35, 130}, -1, 1, 24).detach();
    Tensor y = linear(x, w, b);
    TensorList paired = grad({y}, {x, w, b}, {g}, /*retain_graph=*/true);
    TensorList composite = grad({y}, {x, w, b}, {g}, false, /*create_graph=*/true);
    auto gv = values(g), xv = values(x), wv = values(w0);
    std::vector<double> gx(70 * 300, 0.0), gw(130 * 300, 0.0);
    for (int64_t r = 0; r < 70; ++r)
      for (int64_t o = 0; o < 130; ++o)
        for (int64_t i = 0; i < 300; ++i) {
          gx[r * 300 + i] += gv[r * 130 + o] * wv[o * 300 + i];
          gw[o * 300 + i] += gv[r * 130 + o] * xv[r * 300 + i];
        }
    check_close(values(paired[0]), gx, 1e-12);
    check_close(values(paired[1]), gw, 1e-12);
    CHECK(paired[0].shape() == x.shape());
    for (int k = 0; k < 3; ++k) check_close(values(paired[k]), values(composite[k]), 1e-12);
  }
}

TEST_CASE("linear's bias gradient, summed by the weight gradient's threads, is g's column sums") {
  // Plain backward sums the bias gradient inside the weight-gradient GEMM's blocks (gemm_pair when
  // x needs a gradient, a split GEMM when it does not). Sizes large enough to be split over the
  // threads; float32 and float64, a gradient stored transposed, against naive sums in float64.
  // Each case draws another g, so a buffer reused from the case before cannot hold its answer.
  uint64_t seed = 40;
  for (Dtype d : {float64, float32}) {
    for (bool x_grad : {true, false}) {
      for (bool g_transposed : {false, true}) {
        CAPTURE(dtype_name(d));
        CAPTURE(x_grad);
        CAPTURE(g_transposed);
        Tensor x = leaf({70, 300}, -1, 1, 31).detach().to(d).requires_grad_(x_grad);
        Tensor w = leaf({130, 300}, -1, 1, 32).detach().to(d).requires_grad_();
        Tensor b = leaf({130}, -1, 1, 33).detach().to(d).requires_grad_();
        Tensor g0 = leaf({70, 130}, -1, 1, ++seed).detach().to(d);
        Tensor g = g_transposed ? g0.t().contiguous().t() : g0;
        TensorList got = grad({linear(x, w, b)}, {w, b}, {g});
        auto gv = values(g0), xv = values(x);
        std::vector<double> gw(130 * 300, 0.0), gb(130, 0.0);
        for (int64_t r = 0; r < 70; ++r)
          for (int64_t o = 0; o < 130; ++o) {
            gb[o] += gv[r * 130 + o];
            for (int64_t i = 0; i < 300; ++i) gw[o * 300 + i] += gv[r * 130 + o] * xv[r * 300 + i];
          }
        const double tol = d == float64 ? 1e-12 : 1e-5;
        check_close(values(got[0]), gw, tol);
        check_close(values(got[1]), gb, tol);
        CHECK(got[1].dtype() == d);
      }
    }
  }
}

TEST_CASE("1-D operands: dot, vector-matrix, matrix-vector; outer") {
  Tensor v = Tensor::from_vector(std::vector<double>{1, 2, 3});
  Tensor w = Tensor::from_vector(std::vector<double>{4, 5, 6});
  Tensor d = matmul(v, w);
  CHECK(d.shape() == Shape{});
  CHECK(d.item() == 32);
  Tensor m = arange(0, 6, 1, float64).reshape({3, 2});
  CHECK(matmul(v, m).shape() == Shape{2});
  CHECK(values(matmul(v, m)) == std::vector<double>{16, 22});
  CHECK(values(matmul(m.t(), v)) == std::vector<double>{16, 22});
  Tensor o = outer(v, Tensor::from_vector(std::vector<double>{1, -1}));
  CHECK(o.shape() == Shape{3, 2});
  CHECK(values(o) == std::vector<double>{1, -1, 2, -2, 3, -3});
}

TEST_CASE("float32 dot and matrix-vector products with a long inner size keep float32 accuracy") {
  // One float32 accumulator over 2M positive terms loses ~1e-4 of the sum (oneDNN's kernels for a
  // single row or column did); blocked sums stay near float32's own rounding, as a GEMM's do.
  const int64_t k = int64_t(1) << 21;
  Generator g(17);
  Tensor v = uniform({k}, 0, 1, float32, &g), w = uniform({k}, 0, 1, float32, &g);
  Tensor M = uniform({3, k}, 0, 1, float32, &g), N = uniform({k, 3}, 0, 1, float32, &g);
  auto exact = [](const Tensor& a, const Tensor& b) {
    return matmul(a.to(float64), b.to(float64));
  };
  auto check = [&](const Tensor& got, const Tensor& want, const char* what) {
    INFO(what);
    REQUIRE(got.dtype() == float32);
    std::vector<double> x = values(got.to(float64)), y = values(want);
    REQUIRE(x.size() == y.size());
    for (size_t i = 0; i < x.size(); ++i) CHECK(std::abs(x[i] - y[i]) <= 1e-5 * std::abs(y[i]));
  };
  check(matmul(v, w), exact(v, w), "dot [k] @ [k]");
  check(matmul(M, v), exact(M, v), "matrix-vector [3, k] @ [k]");
  check(matmul(v, N), exact(v, N), "vector-matrix [k] @ [k, 3]");
  check(matmul(N.t(), w), exact(N.t(), w), "transposed matrix-vector [k, 3]^T @ [k]");
  check(matmul(w, M.t()), exact(w, M.t()), "vector-matrix [k] @ [3, k]^T");
  check(matmul(slice(v, 0, 0, k, 2), slice(w, 0, 1, k, 2)),
        exact(slice(v, 0, 0, k, 2), slice(w, 0, 1, k, 2)), "strided dot");
  check(matmul(v.reshape({1, k}), N), exact(v.reshape({1, k}), N), "[1, k] @ [k, 3]");
  check(matmul(M, w.reshape({k, 1})), exact(M, w.reshape({k, 1})), "[3, k] @ [k, 1]");
}

TEST_CASE("batched matmul broadcasts batch axes by NumPy's rules") {
  Tensor a = leaf({2, 1, 3, 4}, -1, 1, 5).detach(), b = leaf({5, 4, 2}, -1, 1, 6).detach();
  Tensor c = matmul(a, b);
  CHECK(c.shape() == Shape{2, 5, 3, 2});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      auto want = naive(values(a[i][0]), values(b[j]), 3, 4, 2);
      check_close(values(c[i][j]), want, 1e-13);
    }
  // A matrix against a batch, a batch against a vector.
  Tensor m = leaf({3, 4}, -1, 1, 7).detach();
  CHECK(matmul(m, b).shape() == Shape{5, 3, 2});
  check_close(values(matmul(m, b)[4]), naive(values(m), values(b[4]), 3, 4, 2), 1e-13);
  CHECK(matmul(a, leaf({4}).detach()).shape() == Shape{2, 1, 3});
  // Transposed batches (the attention pattern q @ k^T).
  Tensor k = leaf({2, 6, 4}, -1, 1, 8).detach(), q = leaf({2, 6, 4}, -1, 1, 9).detach();
  Tensor s = matmul(q, transpose(k, 1, 2));
  check_close(values(s[1]), naive(values(q[1]), values(k[1].t().contiguous()), 6, 4, 6), 1e-13);
}

TEST_CASE("batched matmul: shared right operand, size-1 and expanded batch axes, strided batches") {
  // [2, 3, 4] @ [4, 2]: one GEMM over the stacked rows.
  Tensor a = leaf({2, 3, 4}, -1, 1, 21).detach(), b = leaf({4, 2}, -1, 1, 22).detach();
  Tensor c = matmul(a, b);
  CHECK(c.shape() == Shape{2, 3, 2});
  for (int64_t i = 0; i < 2; ++i)
    check_close(values(c[i]), naive(values(a[i]), values(b), 3, 4, 2), 1e-13);
  check_close(values(matmul(a.to(float32), b.to(float32))), values(c), 1e-5);
  // The same product with b as [1, 4, 2] and as b expanded to [2, 4, 2] (batch stride 0).
  check_close(values(matmul(a, b.reshape({1, 4, 2}))), values(c), 1e-13);
  Tensor be = expand(b, {2, 4, 2});
  CHECK(be.strides()[0] == 0);
  check_close(values(matmul(a, be)), values(c), 1e-13);
  // Transposed a (not stackable) against a shared b.
  Tensor at = a.transpose(1, 2).contiguous().transpose(1, 2);
  CHECK_FALSE(at.is_contiguous());
  check_close(values(matmul(at, b)), values(c), 1e-13);
  // Every other batch entry, and every other column of the inner axis.
  Tensor big = leaf({4, 3, 8}, -1, 1, 23).detach();
  Tensor sb = slice(slice(big, 0, 0, 4, 2), 2, 1, 8, 2);  // [2, 3, 4], strided on two axes
  Tensor r = matmul(sb, b);
  for (int64_t i = 0; i < 2; ++i)
    check_close(values(r[i]), naive(values(sb[i].contiguous()), values(b), 3, 4, 2), 1e-13);
  // 2-D @ 3-D and 1-D @ 3-D.
  Tensor m = leaf({3, 4}, -1, 1, 24).detach(), bb = leaf({2, 4, 5}, -1, 1, 25).detach();
  Tensor mb = matmul(m, bb);
  CHECK(mb.shape() == Shape{2, 3, 5});
  check_close(values(mb[1]), naive(values(m), values(bb[1]), 3, 4, 5), 1e-13);
  Tensor v = leaf({4}, -1, 1, 26).detach();
  Tensor vb = matmul(v, bb);
  CHECK(vb.shape() == Shape{2, 5});
  check_close(values(vb[0]), naive(values(v), values(bb[0]), 1, 4, 5), 1e-13);
  // Float32 batched with broadcast batch axes.
  Tensor a4 = leaf({2, 1, 3, 4}, -1, 1, 27).detach(), b3 = leaf({5, 4, 2}, -1, 1, 28).detach();
  Tensor c32 = matmul(a4.to(float32), b3.to(float32));
  CHECK(c32.dtype() == float32);
  check_close(values(c32[1][3]), naive(values(a4[1][0]), values(b3[3]), 3, 4, 2), 1e-5);
  // Zero inner size: zeros; the gradients have the (empty) input shapes.
  Tensor z0 = zeros({2, 3, 0}, float64).requires_grad_(), z1 = zeros({0, 2}, float64);
  z1.requires_grad_();
  Tensor zz = matmul(z0, z1);
  CHECK(zz.shape() == Shape{2, 3, 2});
  CHECK(values(zz) == std::vector<double>(12, 0.0));
  zz.sum().backward();
  CHECK(z0.grad().shape() == Shape{2, 3, 0});
  CHECK(z1.grad().shape() == Shape{0, 2});
}

TEST_CASE("linear: x W^T + b for 2-D and N-D input, with and without bias") {
  Tensor x = leaf({2, 3, 4}, -1, 1, 10).detach(), w = leaf({5, 4}, -1, 1, 11).detach();
  Tensor b = leaf({5}, -1, 1, 12).detach();
  Tensor y = linear(x, w, b);
  CHECK(y.shape() == Shape{2, 3, 5});
  auto want = naive(values(x.reshape({6, 4})), values(w.t().contiguous()), 6, 4, 5);
  auto bv = values(b);
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t j = 0; j < 5; ++j) want[r * 5 + j] += bv[j];
  check_close(values(y), want, 1e-13);
  CHECK(test::allclose(linear(x, w), matmul(x, w.t()), 1e-13, 0));
  Tensor y32 = linear(x.to(float32), w.to(float32), b.to(float32));
  CHECK(y32.dtype() == float32);
  check_close(values(y32), want, 1e-5);
  // Strided input and a transposed weight (stored [in, out]) give the same values.
  Tensor xs = x.transpose(0, 1).contiguous().transpose(0, 1);
  Tensor ws = w.t().contiguous().t();
  CHECK_FALSE(xs.is_contiguous());
  CHECK_FALSE(ws.is_contiguous());
  check_close(values(linear(xs, ws, b)), want, 1e-13);
  // A single vector in, a vector out.
  Tensor x1 = Tensor::from_vector(std::vector<double>{1, 2, 3, 4});
  Tensor w1 = arange(0, 8, 1, float64).reshape({2, 4});  // rows [0,1,2,3], [4,5,6,7]
  Tensor y1 = linear(x1, w1, Tensor::from_vector(std::vector<double>{10, 20}));
  CHECK(y1.shape() == Shape{2});
  CHECK(values(y1) == std::vector<double>{30, 80});
  // No input features: the output is the bias; the bias gradient counts the rows.
  Tensor xe = zeros({2, 0}, float64).requires_grad_(), we = zeros({3, 0}, float64);
  Tensor be = Tensor::from_vector(std::vector<double>{1, 2, 3});
  we.requires_grad_();
  be.requires_grad_();
  Tensor ye = linear(xe, we, be);
  CHECK(values(ye) == std::vector<double>{1, 2, 3, 1, 2, 3});
  ye.sum().backward();
  CHECK(values(be.grad()) == std::vector<double>{2, 2, 2});
  CHECK(xe.grad().shape() == Shape{2, 0});
  CHECK(we.grad().shape() == Shape{3, 0});
  CHECK(values(linear(xe, we)) == std::vector<double>(6, 0.0));
}

TEST_CASE("linear_relu is relu(linear): values and gradients on every path") {
  // Sizes that split over the threads: a small output (clamped by the calling thread after the
  // blocks) and a large one (each thread clamps its own block); a transposed weight, 3-D input, no
  // bias, and an input dimension of zero; float32 and float64. Gradients: the plain backward (the
  // mask written into the engine's own gradient), a caller's grad_output (which must be left as it
  // was), and create_graph (the differentiable composite).
  for (int64_t rows : {40, 300})
    for (Dtype d : {float64, float32}) {
      for (bool transposed_w : {false, true}) {
        CAPTURE(rows);
        CAPTURE(d);
        CAPTURE(transposed_w);
        const double tol = d == float32 ? 1e-5 : 1e-12;
        Tensor x = leaf({2, rows, 300}, -1, 1, 41).detach().to(d).requires_grad_();
        Tensor w0 = leaf({130, 300}, -1, 1, 42).detach().to(d);
        Tensor w = (transposed_w ? w0.t().contiguous().t() : w0).requires_grad_();
        Tensor b = leaf({130}, -1, 1, 43).detach().to(d).requires_grad_();
        Tensor ref = relu(linear(x, w, b)), y = linear_relu(x, w, b);
        check_close(values(y), values(ref), tol);
        CHECK(values(y) != values(linear(x, w, b)));  // some outputs were clamped
        Tensor g = leaf({2, rows, 130}, -1, 1, 44).detach().to(d);
        const std::vector<double> g_before = values(g);
        TensorList want = grad({ref}, {x, w, b}, {g});
        TensorList given = grad({linear_relu(x, w, b)}, {x, w, b}, {g});
        CHECK(values(g) == g_before);
        TensorList recorded = grad({linear_relu(x, w, b)}, {x, w, b}, {g}, false, true);
        for (int k = 0; k < 3; ++k) {
          CAPTURE(k);
          check_close(values(given[k]), values(want[k]), tol);
          check_close(values(recorded[k]), values(want[k]), tol);
        }
        // Through a loss: the gradient reaching linear_relu is the engine's own buffer.
        Tensor t = leaf({2, rows, 130}, -1, 1, 45).detach().to(d);
        TensorList plain = grad({mul(linear_relu(x, w, b), t).sum()}, {x, w, b});
        TensorList split = grad({mul(relu(linear(x, w, b)), t).sum()}, {x, w, b});
        for (int k = 0; k < 3; ++k) check_close(values(plain[k]), values(split[k]), tol);
      }
    }
  Tensor x = leaf({3, 4}, -1, 1, 46).detach(), w = leaf({5, 4}, -1, 1, 47).detach();
  CHECK(test::allclose(linear_relu(x, w), relu(linear(x, w)), 1e-15, 0));
  Tensor be = Tensor::from_vector(std::vector<double>{1, -2, 3});
  CHECK(values(linear_relu(zeros({2, 0}, float64), zeros({3, 0}, float64), be)) ==
        std::vector<double>{1, 0, 3, 1, 0, 3});
  // bfloat16 operands take relu(linear(...)).
  Tensor xb = x.to(bfloat16), wb = w.to(bfloat16);
  CHECK(values(linear_relu(xb, wb)) == values(relu(linear(xb, wb))));
  CHECK_THROWS_WITH_PARTS(linear_relu(zeros({2, 3}), zeros({4, 5})), ShapeError,
                          "linear_relu: input [2, 3] and weight [4, 5]");
  CHECK_THROWS_WITH_PARTS(linear_relu(zeros({2, 3}), zeros({4, 3}), zeros({5})), ShapeError,
                          "linear_relu", "[5]", "[4, 3]");
  CHECK_THROWS_WITH_PARTS(linear_relu(zeros({2, 3}, int64), zeros({4, 3})), DtypeError,
                          "linear_relu", "int64");
}

TEST_CASE("first and second derivatives") {
  check_gradients([](const TensorList& v) { return matmul(v[0], v[1]); },
                  {leaf({3, 4}, -1, 1, 1), leaf({4, 2}, -1, 1, 2)});
  check_gradients([](const TensorList& v) { return matmul(v[0], v[1]); },
                  {leaf({4}, -1, 1, 3), leaf({4}, -1, 1, 4)});
  check_gradients([](const TensorList& v) { return matmul(v[0], v[1]); },
                  {leaf({4}, -1, 1, 5), leaf({4, 3}, -1, 1, 6)});
  check_gradients([](const TensorList& v) { return matmul(v[0], v[1]); },
                  {leaf({2, 4}, -1, 1, 7), leaf({4}, -1, 1, 8)});
  check_gradients([](const TensorList& v) { return matmul(v[0], v[1]); },
                  {leaf({2, 1, 3, 2}, -1, 1, 9), leaf({3, 2, 2}, -1, 1, 10)});
  check_gradients([](const TensorList& v) { return matmul(v[0], transpose(v[1], -1, -2)); },
                  {leaf({2, 3, 2}, -1, 1, 11), leaf({2, 4, 2}, -1, 1, 12)});
  check_gradients([](const TensorList& v) { return outer(v[0], v[1]); },
                  {leaf({3}, -1, 1, 13), leaf({2}, -1, 1, 14)});
  check_gradients([](const TensorList& v) { return linear(v[0], v[1], v[2]); },
                  {leaf({2, 3, 4}, -1, 1, 15), leaf({2, 4}, -1, 1, 16), leaf({2}, -1, 1, 17)});
  check_gradients([](const TensorList& v) { return linear(v[0], v[1]); },
                  {leaf({3, 4}, -1, 1, 18), leaf({2, 4}, -1, 1, 19)});
  // N-D @ 2-D (the right operand's gradient sums the batch inside one GEMM), 2-D @ N-D, 1-D @ N-D.
  check_gradients([](const TensorList& v) { return matmul(v[0], v[1]); },
                  {leaf({2, 3, 4}, -1, 1, 21), leaf({4, 2}, -1, 1, 22)});
  check_gradients([](const TensorList& v) { return matmul(v[0], v[1]); },
                  {leaf({3, 4}, -1, 1, 23), leaf({2, 4, 2}, -1, 1, 24)});
  check_gradients([](const TensorList& v) { return matmul(v[0], v[1]); },
                  {leaf({4}, -1, 1, 25), leaf({2, 4, 3}, -1, 1, 26)});
  check_gradients(
      [](const TensorList& v) {
        return matmul(v[0], expand(v[1], {2, 3, 2}));
      },
      {leaf({2, 2, 3}, -1, 1, 27), leaf({3, 2}, -1, 1, 28)});
  // Transposed operands on both sides.
  check_gradients([](const TensorList& v) { return matmul(v[0].t(), v[1].t()); },
                  {leaf({4, 3}, -1, 1, 29), leaf({2, 4}, -1, 1, 30)});
  check_gradients([](const TensorList& v) { return linear(v[0].t(), v[1].t(), v[2]); },
                  {leaf({4, 3}, -1, 1, 31), leaf({4, 2}, -1, 1, 32), leaf({2}, -1, 1, 33)});
  check_gradients([](const TensorList& v) { return linear(v[0], v[1], v[2]); },
                  {leaf({4}, -1, 1, 34), leaf({3, 4}, -1, 1, 35), leaf({3}, -1, 1, 36)});
  check_gradients([](const TensorList& v) { return linear(v[0], v[1]) * linear(v[0], v[1]); },
                  {leaf({2, 2, 3}, -1, 1, 37), leaf({2, 3}, -1, 1, 38)});
  check_gradients([](const TensorList& v) { return linear_relu(v[0], v[1], v[2]); },
                  {leaf({2, 3, 4}, -1, 1, 39), leaf({5, 4}, -1, 1, 40), leaf({5}, -1, 1, 48)});
  check_gradients([](const TensorList& v) { return linear_relu(v[0].t(), v[1].t()); },
                  {leaf({4, 3}, -1, 1, 49), leaf({4, 5}, -1, 1, 50)});
  check_gradients(
      [](const TensorList& v) { return linear_relu(v[0], v[1], v[2]) * linear(v[0], v[1]); },
      {leaf({3, 4}, -1, 1, 51), leaf({5, 4}, -1, 1, 52), leaf({5}, -1, 1, 53)});
  // Products of products: second derivatives that are not zero.
  check_gradients([](const TensorList& v) { return matmul(matmul(v[0], v[0]), v[0]); },
                  {leaf({3, 3}, -1, 1, 20)});
}

TEST_CASE("errors name the op and both shapes") {
  CHECK_THROWS_WITH_PARTS(matmul(zeros({64, 784}), zeros({256, 10})), ShapeError,
                          "matmul: [64, 784] @ [256, 10]: inner sizes 784 and 256 differ");
  CHECK_THROWS_WITH_PARTS(matmul(zeros({3}), zeros({4})), ShapeError, "matmul", "[3]", "[4]");
  CHECK_THROWS_WITH_PARTS(matmul(zeros({2, 2, 3}), zeros({3, 3, 1})), ShapeError, "matmul",
                          "[2, 2, 3]", "[3, 3, 1]", "batch");
  CHECK_THROWS_WITH_PARTS(matmul(zeros({2, 3}), zeros({4})), ShapeError,
                          "matmul: [2, 3] @ [4]: inner sizes 3 and 4 differ");
  CHECK_THROWS_WITH_PARTS(matmul(zeros({3}), zeros({4, 2})), ShapeError,
                          "matmul: [3] @ [4, 2]: inner sizes 3 and 4 differ");
  CHECK_THROWS_WITH_PARTS(matmul(zeros({5, 2, 3}), zeros({5, 2, 3})), ShapeError,
                          "matmul: [5, 2, 3] @ [5, 2, 3]: inner sizes 3 and 2 differ");
  CHECK_THROWS_WITH_PARTS(matmul(zeros({2, 2, 3}), zeros({3, 3, 1})), ShapeError,
                          "matmul: [2, 2, 3] @ [3, 3, 1]: batch axes [2] and [3] cannot be "
                          "broadcast");
  // 0-d operands, on either side.
  CHECK_THROWS_WITH_PARTS(matmul(zeros({}), zeros({3})), ShapeError, "matmul", "[]");
  CHECK_THROWS_WITH_PARTS(matmul(zeros({3}), zeros({})), ShapeError, "matmul", "[3] @ []");
  CHECK_THROWS_WITH_PARTS(matmul(zeros({}), zeros({})), ShapeError, "matmul", "[] @ []");
  CHECK_THROWS_WITH_PARTS(outer(zeros({}), zeros({2})), ShapeError, "outer", "[]", "[2]");
  CHECK_THROWS_WITH_PARTS(linear(zeros({}), zeros({2, 3})), ShapeError, "linear", "[]", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(linear(zeros({2, 3}, int64), zeros({4, 3})), DtypeError, "linear",
                          "int64");
  CHECK_THROWS_WITH_PARTS(matmul(zeros({2}, int64), zeros({2}, int64)), DtypeError, "matmul",
                          "int64");
  CHECK_THROWS_WITH_PARTS(outer(zeros({2, 2}), zeros({2})), ShapeError, "outer", "[2, 2]");
  CHECK_THROWS_WITH_PARTS(linear(zeros({2, 3}), zeros({4, 5})), ShapeError, "linear", "[2, 3]",
                          "[4, 5]");
  CHECK_THROWS_WITH_PARTS(linear(zeros({2, 3}), zeros({4, 3}), zeros({5})), ShapeError, "linear",
                          "[5]", "[4, 3]");
  CHECK_THROWS_WITH_PARTS(linear(zeros({2, 3}), zeros({3})), ShapeError, "linear", "[3]");
}

namespace {
// Threads of this process, from /proc/self/task (Linux).
int64_t process_threads() {
  int64_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}
}  // namespace

TEST_CASE("GEMMs run on the engine's OpenMP threads: no second thread pool") {
  // float32 GEMMs go to oneDNN (OpenMP build), float64 ones to OpenBLAS: neither may start threads
  // of its own next to the OpenMP team, whatever OMP_NUM_THREADS is (meson runs this case with 1, 2
  // and 4). A pthread BLAS or a oneDNN with its own pool would show up as extra threads here.
  const int64_t team = omp_get_max_threads();
  Tensor a = leaf({300, 500}, -1, 1, 3).detach(), b = leaf({500, 400}, -1, 1, 4).detach();
  Tensor expect = matmul(a, b);
  for (Dtype d : {float32, float64}) {
    Tensor x = a.to(d).requires_grad_(), w = b.to(d).requires_grad_();
    Tensor y = matmul(x, w);
    y.sum().backward();
    const double tol = d == float32 ? 1e-4 : 1e-12;
    check_close(values(y), values(expect), tol);
    check_close(values(linear(x, w.t().contiguous())), values(expect), tol);
  }
  INFO("OpenMP team " << team);
  CHECK(process_threads() <= std::max<int64_t>(team, 1));
}
