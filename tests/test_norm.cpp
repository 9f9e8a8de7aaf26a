// layer_norm: values against a hand computation, first and second derivatives (with and without
// weight and bias, one and several normalized axes) and the errors.
#include <cmath>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::leaf;

namespace {

// Layer norm of each row of a [rows, n] matrix, computed the long way in doubles.
std::vector<double> layer_norm_by_hand(const std::vector<double>& x, int64_t n,
                                       const std::vector<double>& w, const std::vector<double>& b,
                                       double eps = 1e-5) {
  std::vector<double> out(x.size());
  for (size_t r = 0; r < x.size() / n; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += x[r * n + i];
    mean /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) var += (x[r * n + i] - mean) * (x[r * n + i] - mean);
    var /= static_cast<double>(n);  // biased, as layer norm uses
    for (int64_t i = 0; i < n; ++i) {
      double xhat = (x[r * n + i] - mean) / std::sqrt(var + eps);
      out[r * n + i] = xhat * (w.empty() ? 1.0 : w[i]) + (b.empty() ? 0.0 : b[i]);
    }
  }
  return out;
}

void check_values(const Tensor& got, const std::vector<double>& expected, double tol = 1e-9) {
  auto v = got.to_vector<double>();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i);
    CHECK(v[i] == doctest::Approx(expected[i]).epsilon(tol));
  }
}

}  // namespace

TEST_CASE("layer_norm without weight and bias: (x - mean) / sqrt(var + eps) per row") {
  Tensor x = Tensor({{1.0, 2.0, 3.0}, {-1.0, 0.0, 4.0}}).to(float64);
  Tensor y = layer_norm(x, {3});
  CHECK(y.shape() == Shape{2, 3});
  check_values(y, layer_norm_by_hand(x.to_vector<double>(), 3, {}, {}));
  // Row 0 by hand: mean 2, var 2/3, so xhat = (-1, 0, 1) / sqrt(2/3 + 1e-5).
  CHECK(y.at({0, 2}) == doctest::Approx(1.0 / std::sqrt(2.0 / 3.0 + 1e-5)));
  CHECK(y.at({0, 1}) == doctest::Approx(0.0));
}

TEST_CASE("layer_norm with weight and bias scales and shifts each normalized element") {
  Tensor x = Tensor({{0.5, -2.0, 1.5, 3.0}, {1.0, 1.5, -0.5, 0.0}}).to(float64);
  Tensor w = Tensor({2.0, -1.0, 0.5, 1.0}).to(float64);
  Tensor b = Tensor({0.1, 0.2, -0.3, 0.0}).to(float64);
  std::vector<double> wv = w.to_vector<double>(), bv = b.to_vector<double>();
  check_values(layer_norm(x, {4}, w, b), layer_norm_by_hand(x.to_vector<double>(), 4, wv, bv));
  check_values(layer_norm(x, {4}, w), layer_norm_by_hand(x.to_vector<double>(), 4, wv, {}));
  check_values(layer_norm(x, {4}, Tensor(), b),
               layer_norm_by_hand(x.to_vector<double>(), 4, {}, bv));
  // A larger eps changes the result exactly as the formula says.
  check_values(layer_norm(x, {4}, w, b, 0.1),
               layer_norm_by_hand(x.to_vector<double>(), 4, wv, bv, 0.1));
}

TEST_CASE("layer_norm over several trailing axes normalizes over all of them together") {
  Tensor x = leaf({2, 2, 3}, -2.0, 2.0, 3).detach();
  Tensor w = leaf({2, 3}, 0.5, 1.5, 4).detach();
  Tensor b = leaf({2, 3}, -1.0, 1.0, 5).detach();
  Tensor y = layer_norm(x, {2, 3}, w, b);
  CHECK(y.shape() == Shape{2, 2, 3});
  check_values(y, layer_norm_by_hand(x.to_vector<double>(), 6, w.to_vector<double>(),
                                     b.to_vector<double>()));
}

TEST_CASE("layer_norm: float32 agrees with float64, a constant row gives the bias") {
  Tensor x64 = leaf({3, 5}, -3.0, 3.0, 7).detach();
  Tensor y32 = layer_norm(x64.to(float32), {5});
  CHECK(y32.dtype() == float32);
  CHECK(test::allclose(y32.to(float64), layer_norm(x64, {5}), 1e-5, 1e-4));
  // var = 0: xhat = 0 / sqrt(eps) = 0, out = bias, and nothing is NaN.
  Tensor c = full({2, 4}, 3.0, float64);
  Tensor b = Tensor({1.0, 2.0, 3.0, 4.0}).to(float64);
  check_values(layer_norm(c, {4}, ones({4}, float64), b), {1, 2, 3, 4, 1, 2, 3, 4});
}

TEST_CASE("layer_norm gradients: input only (no weight or bias)") {
  check_gradients([](const TensorList& a) { return layer_norm(a[0], {4}); },
                  {leaf({3, 4}, -1.0, 1.0, 11)});
  // A 1-D input: no leading axes at all.
  check_gradients([](const TensorList& a) { return layer_norm(a[0], {5}); },
                  {leaf({5}, -1.0, 1.0, 12)});
}

TEST_CASE("layer_norm gradients: input, weight and bias") {
  check_gradients([](const TensorList& a) { return layer_norm(a[0], {4}, a[1], a[2]); },
                  {leaf({3, 4}, -1.0, 1.0, 13), leaf({4}, 0.5, 1.5, 14), leaf({4}, -1.0, 1.0, 15)});
  // Leading axes [2, 3]: weight and bias gradients sum over both.
  check_gradients(
      [](const TensorList& a) { return layer_norm(a[0], {3}, a[1], a[2]); },
      {leaf({2, 3, 3}, -1.0, 1.0, 16), leaf({3}, 0.5, 1.5, 17), leaf({3}, -1.0, 1.0, 18)});
  // 1-D input with weight and bias.
  check_gradients([](const TensorList& a) { return layer_norm(a[0], {4}, a[1], a[2]); },
                  {leaf({4}, -1.0, 1.0, 19), leaf({4}, 0.5, 1.5, 20), leaf({4}, -1.0, 1.0, 21)});
}

TEST_CASE("layer_norm gradients: weight without bias, bias without weight") {
  check_gradients([](const TensorList& a) { return layer_norm(a[0], {3}, a[1]); },
                  {leaf({4, 3}, -1.0, 1.0, 22), leaf({3}, 0.5, 1.5, 23)});
  check_gradients([](const TensorList& a) { return layer_norm(a[0], {3}, Tensor(), a[1]); },
                  {leaf({4, 3}, -1.0, 1.0, 24), leaf({3}, -1.0, 1.0, 25)});
}

TEST_CASE("layer_norm gradients over two normalized axes") {
  check_gradients(
      [](const TensorList& a) {
        return layer_norm(a[0], {2, 3}, a[1], a[2]);
      },
      {leaf({2, 2, 3}, -1.0, 1.0, 26), leaf({2, 3}, 0.5, 1.5, 27), leaf({2, 3}, -1.0, 1.0, 28)});
}

TEST_CASE("layer_norm gradients when only the parameters require grad") {
  Tensor x = leaf({3, 4}, -1.0, 1.0, 29).detach();
  check_gradients([x](const TensorList& a) { return layer_norm(x, {4}, a[0], a[1]); },
                  {leaf({4}, 0.5, 1.5, 30), leaf({4}, -1.0, 1.0, 31)});
}

TEST_CASE("layer_norm backward matches the documented formulas") {
  // dbias = sum of g over rows, dweight = sum of g * xhat; dx sums to zero over each row.
  Tensor x = leaf({3, 4}, -1.0, 1.0, 32);
  Tensor w = leaf({4}, 0.5, 1.5, 33);
  Tensor b = leaf({4}, -1.0, 1.0, 34);
  Tensor g = leaf({3, 4}, -1.0, 1.0, 35).detach();
  layer_norm(x, {4}, w, b).backward(g);
  Tensor xhat = layer_norm(x.detach(), {4});
  CHECK(test::allclose(b.grad(), g.sum({0}), 1e-12));
  CHECK(test::allclose(w.grad(), (g * xhat).sum({0}), 1e-12));
  CHECK(test::allclose(x.grad().sum({1}), zeros({3}, float64), 1e-12));
}

TEST_CASE("layer_norm: the one-pass backward equals the recorded composite one") {
  // Plain backward uses the saved mean and rstd in one pass; create_graph takes the composite.
  // Large enough (rows * n > 65536) that the rows are shared between threads.
  for (Dtype d : {float64, float32}) {
    for (bool affine : {true, false}) {
      CAPTURE(affine);
      Tensor x = leaf({300, 2, 128}, -2, 2, 31).detach().to(d).requires_grad_();
      Tensor w = leaf({2, 128}, 0.5, 1.5, 32).detach().to(d).requires_grad_();
      Tensor b = leaf({2, 128}, -1, 1, 33).detach().to(d).requires_grad_();
      Tensor y = affine ? layer_norm(x, {2, 128}, w, b) : layer_norm(x, {2, 128});
      Tensor g = leaf({300, 2, 128}, -1, 1, 34).detach().to(d);
      TensorList in = affine ? TensorList{x, w, b} : TensorList{x};
      TensorList fused = grad({y}, in, {g}, /*retain_graph=*/true);
      TensorList composite = grad({y}, in, {g}, false, /*create_graph=*/true);
      for (size_t i = 0; i < in.size(); ++i) {
        CAPTURE(i);
        check_values(fused[i], composite[i].to_vector<double>(), d == float64 ? 1e-9 : 1e-4);
      }
    }
  }
}

TEST_CASE("layer_norm errors name the op and the shapes") {
  Tensor x = zeros({2, 3}, float64);
  CHECK_THROWS_WITH_PARTS(layer_norm(x, {4}), ShapeError, "layer_norm", "[2, 3]", "[4]");
  CHECK_THROWS_WITH_PARTS(layer_norm(x, {2, 2, 3}), ShapeError, "layer_norm", "[2, 3]",
                          "[2, 2, 3]");
  CHECK_THROWS_WITH_PARTS(layer_norm(x, {}), ShapeError, "layer_norm", "[2, 3]", "[]");
  CHECK_THROWS_WITH_PARTS(layer_norm(x, {3}, ones({2}, float64)), ShapeError, "layer_norm",
                          "weight", "[2]", "[3]");
  CHECK_THROWS_WITH_PARTS(layer_norm(x, {3}, Tensor(), ones({4}, float64)), ShapeError,
                          "layer_norm", "bias", "[4]", "[3]");
  CHECK_THROWS_WITH_PARTS(layer_norm(zeros({2, 3}, int64), {3}), DtypeError, "layer_norm", "int64");
}
