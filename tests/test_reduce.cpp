// Reductions, softmax and log_softmax: values against hand computations, keepdim and several axes,
// first and second derivatives (float64 gradcheck and gradgradcheck), stability at +-1e4 and
// errors.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "support.h"

using namespace ag;
using test::all_finite;
using test::check_gradients;
using test::check_values;
using test::f64;
using test::leaf;
using test::values;

namespace {

// x [2, 3] = {{1, 2, 3}, {4, 6, 8}}
Tensor small() { return f64({1, 2, 3, 4, 6, 8}, {2, 3}); }

const double inf = std::numeric_limits<double>::infinity();

}  // namespace

// ---- sum, mean ----

TEST_CASE("sum and mean over all axes, one axis, several axes, with and without keepdim") {
  Tensor x = small();
  CHECK(sum(x).item() == 24.0);
  CHECK(sum(x).shape() == Shape{});
  check_values(sum(x, {0}), {5, 8, 11});
  check_values(sum(x, {-1}), {6, 18});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1});
  CHECK(sum(x, {0, 1}, true).shape() == Shape{1, 1});
  check_values(mean(x, {1}), {2, 6});
  check_values(mean(x, {0}), {2.5, 4, 5.5});
  CHECK(mean(x).item() == 4.0);
  Tensor y = leaf({2, 3, 4}).detach();
  CHECK(test::allclose(sum(y, {0, 2}), sum(sum(y, {2}), {0}), 1e-12));
  CHECK(sum(y, {2, 0}, true).shape() == Shape{1, 3, 1});
  // bool sums count: int64.
  CHECK(sum(gt(x, full({}, 2.5, float64))).dtype() == int64);
  CHECK(sum(gt(x, full({}, 2.5, float64))).item() == 4.0);
}

TEST_CASE("float32 sums of contiguous rows keep double accuracy (the conv bias-gradient shape)") {
  // Rows of 1 to 2000 values: whole SIMD registers and a tail. A float running total would drift
  // (1 + 2000 terms of 1e-4 lose about 1e-4 relatively); the SIMD row sum stays within 1e-6.
  for (int64_t n : {1, 7, 16, 37, 2000}) {
    CAPTURE(n);
    std::vector<double> v(size_t(3 * n));
    for (size_t i = 0; i < v.size(); ++i) v[i] = i % 3 == 0 ? 1.0 : 1e-4 * double(i % 7);
    Tensor x64 = Tensor::from_vector(v, {3, n});
    Tensor x = x64.to(float32);
    CHECK(test::allclose(sum(x, {1}).to(float64), sum(x.to(float64), {1}), 0, 1e-6));
    // Over the batch and the spatial axes, keeping the channels: [N, C, H*W] -> [C].
    Tensor y = x.reshape({3, 1, n}).expand({3, 4, n}).contiguous();
    CHECK(test::allclose(sum(y, {0, 2}).to(float64), sum(y.to(float64), {0, 2}), 0, 1e-6));
  }
}

TEST_CASE("sum and mean gradients") {
  for (bool keepdim : {false, true}) {
    INFO("keepdim " << keepdim);
    check_gradients([keepdim](const TensorList& a) { return sum(a[0], {1}, keepdim); },
                    {leaf({2, 3, 2}, -1, 1, 1)});
    check_gradients(
        [keepdim](const TensorList& a) {
          return mean(a[0], {0, 2}, keepdim);
        },
        {leaf({2, 3, 2}, -1, 1, 2)});
  }
  check_gradients([](const TensorList& a) { return sum(a[0]); }, {leaf({3, 2}, -1, 1, 3)});
  check_gradients([](const TensorList& a) { return mean(a[0]); }, {leaf({3, 2}, -1, 1, 4)});
}

// ---- var, std ----

TEST_CASE("var and std: Bessel's correction by default, correction 0 for the population") {
  Tensor x = f64({1, 2, 3, 4});
  CHECK(var(x).item() == doctest::Approx(5.0 / 3));
  CHECK(var(x, {}, 0).item() == doctest::Approx(1.25));
  CHECK(ag::std(x).item() == doctest::Approx(std::sqrt(5.0 / 3)));
  CHECK(ag::std(x, {}, 0).item() == doctest::Approx(std::sqrt(1.25)));
  // Rows {1, 2, 3} and {4, 6, 8}: variances 1 and 4; columns: (x - y)^2 / 2.
  check_values(var(small(), {1}), {1, 4});
  check_values(var(small(), {0}), {4.5, 8, 12.5});
  check_values(ag::std(small(), {1}), {1, 2});
  CHECK(var(small(), {1}, 1, true).shape() == Shape{2, 1});
  CHECK(ag::std(small(), {0, 1}, 1, true).shape() == Shape{1, 1});
  CHECK(var(small()).item() == doctest::Approx(var(f64({1, 2, 3, 4, 6, 8})).item()));
  // One sample with correction 1: 0 / 0 = NaN, as in PyTorch.
  CHECK(std::isnan(var(f64({2.0})).item()));
}

TEST_CASE("var and std gradients") {
  for (bool keepdim : {false, true}) {
    INFO("keepdim " << keepdim);
    check_gradients([keepdim](const TensorList& a) { return var(a[0], {1}, 1, keepdim); },
                    {leaf({2, 4}, -1, 1, 5)});
    check_gradients(
        [keepdim](const TensorList& a) {
          return ag::std(a[0], {0, 2}, 0, keepdim);
        },
        {leaf({3, 2, 2}, -1, 1, 6)});
  }
  check_gradients([](const TensorList& a) { return var(a[0]); }, {leaf({5}, -1, 1, 7)});
  check_gradients([](const TensorList& a) { return ag::std(a[0]); }, {leaf({2, 3}, -1, 1, 8)});
  // d var / dx = 2 (x - mean) / (n - 1): for {1, 2, 3, 4}, (-1.5, -0.5, 0.5, 1.5) * 2 / 3.
  Tensor x = f64({1, 2, 3, 4}).requires_grad_();
  var(x).backward();
  check_values(x.grad(), {-1.0, -1.0 / 3, 1.0 / 3, 1.0});
}

// ---- amax, amin, max, min, argmax, argmin ----

TEST_CASE("amax and amin over axes") {
  Tensor x = f64({1, 7, 3, 4, 6, -8}, {2, 3});
  CHECK(amax(x).item() == 7.0);
  CHECK(amin(x).item() == -8.0);
  check_values(amax(x, {0}), {4, 7, 3});
  check_values(amin(x, {1}), {1, -8});
  CHECK(amax(x, {1}, true).shape() == Shape{2, 1});
  Tensor y = leaf({2, 3, 4}).detach();
  CHECK(test::allclose(amax(y, {0, 2}), amax(amax(y, {2}), {0}), 0));
  CHECK(amax(y, {0, 2}, true).shape() == Shape{1, 3, 1});
  // Integers keep their dtype; NaN propagates.
  Tensor i = Tensor::from_vector(std::vector<int64_t>{3, -5, 9}, {3});
  CHECK(amax(i).dtype() == int64);
  CHECK(amax(i).item() == 9.0);
  CHECK(amin(i).item() == -5.0);
  CHECK(std::isnan(amax(f64({1, NAN, 3})).item()));
  CHECK(std::isnan(amin(f64({1, NAN, 3})).item()));
}

TEST_CASE("amax / amin / whole-tensor max and min split the gradient evenly among ties") {
  Tensor x = f64({1, 3, 3, 2}).requires_grad_();
  amax(x).backward();
  check_values(x.grad(), {0, 0.5, 0.5, 0});
  x.zero_grad();
  max(x).backward();
  check_values(x.grad(), {0, 0.5, 0.5, 0});
  Tensor m = f64({1, 1, 1, 5, 0, 0}, {2, 3}).requires_grad_();
  amin(m, {1}).sum().backward();
  check_values(m.grad(), {1.0 / 3, 1.0 / 3, 1.0 / 3, 0, 0.5, 0.5});
  m.zero_grad();
  min(m).backward();
  check_values(m.grad(), {0, 0, 0, 0, 0.5, 0.5});
  CHECK(max(m).shape() == Shape{});
  CHECK(max(m).item() == 5.0);
  CHECK(min(m).item() == 0.0);
}

TEST_CASE("amax and amin gradients (distinct values)") {
  for (bool keepdim : {false, true}) {
    INFO("keepdim " << keepdim);
    check_gradients([keepdim](const TensorList& a) { return amax(a[0], {1}, keepdim); },
                    {leaf({3, 4}, -1, 1, 9)});
    check_gradients(
        [keepdim](const TensorList& a) {
          return amin(a[0], {0, 2}, keepdim);
        },
        {leaf({2, 3, 2}, -1, 1, 10)});
  }
  check_gradients([](const TensorList& a) { return max(a[0]); }, {leaf({2, 3}, -1, 1, 11)});
  check_gradients([](const TensorList& a) { return min(a[0]); }, {leaf({2, 3}, -1, 1, 12)});
}

TEST_CASE("max / min along an axis give values and the first index of the extremum") {
  Tensor x = f64({3, 1, 3, 0, 5, 5}, {2, 3});
  auto [v, i] = max(x, 1);
  check_values(v, {3, 5});
  CHECK(i.dtype() == int64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{0, 1});  // first on ties
  auto [v0, i0] = min(x, 0);
  check_values(v0, {0, 1, 3});
  CHECK(i0.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0});
  auto [vk, ik] = max(x, -1, /*keepdim=*/true);
  CHECK(vk.shape() == Shape{2, 1});
  CHECK(ik.shape() == Shape{2, 1});
  // A middle axis of a 3-D tensor agrees with amax and with gather-free indexing.
  Tensor y = leaf({2, 4, 3}, -1, 1, 13).detach();
  auto [vy, iy] = max(y, 1);
  CHECK(vy.shape() == Shape{2, 3});
  CHECK(test::allclose(vy, amax(y, {1}), 0));
  auto idx = iy.to_vector<int64_t>();
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t c = 0; c < 3; ++c) CHECK(y.at({a, idx[a * 3 + c], c}) == vy.at({a, c}));
  // A 0-d tensor: axis 0 or -1, index 0.
  auto [vs, is] = max(full({}, 2.5, float64), 0);
  CHECK(vs.item() == 2.5);
  CHECK(is.item() == 0.0);
}

TEST_CASE("the gradient of max / min along an axis flows to the selected index only") {
  Tensor x = f64({3, 1, 3, 0, 5, 5}, {2, 3}).requires_grad_();
  max(x, 1).first.sum().backward();
  check_values(x.grad(), {1, 0, 0, 0, 1, 0});
  x.zero_grad();
  Tensor g = f64({10, 20, 30});
  min(x, 0).first.backward(g);
  check_values(x.grad(), {0, 20, 30, 10, 0, 0});
  for (bool keepdim : {false, true}) {
    INFO("keepdim " << keepdim);
    check_gradients([keepdim](const TensorList& a) { return max(a[0], 1, keepdim).first; },
                    {leaf({3, 4}, -1, 1, 14)});
    check_gradients([keepdim](const TensorList& a) { return min(a[0], 0, keepdim).first; },
                    {leaf({3, 2, 2}, -1, 1, 15)});
    check_gradients([keepdim](const TensorList& a) { return max(a[0], -1, keepdim).first; },
                    {leaf({2, 2, 3}, -1, 1, 16)});
  }
}

TEST_CASE("argmax and argmin") {
  Tensor x = f64({3, 1, 3, 0, 5, 5}, {2, 3});
  CHECK(argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  CHECK(argmin(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  CHECK(argmax(x, 0).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1});
  CHECK(argmax(x, 0, true).shape() == Shape{1, 3});
  CHECK(argmax(x, 0).dtype() == int64);
  CHECK_FALSE(argmax(x.detach().requires_grad_(), 1).requires_grad());
  CHECK(argmax(Tensor::from_vector(std::vector<int64_t>{2, 9, 4}), 0).item() == 1.0);
  CHECK(argmax(f64({1, NAN, 3}), 0).item() == 1.0);  // NaN counts as the maximum
  // float32 works the same way.
  CHECK(argmin(small().to(float32), 1).to_vector<int64_t>() == std::vector<int64_t>{0, 0});
}

// ---- logsumexp, norm ----

TEST_CASE("logsumexp: log(sum(exp(x))), stable for large and infinite values") {
  Tensor x = small();
  check_values(logsumexp(x, {1}), {std::log(std::exp(1) + std::exp(2) + std::exp(3)),
                                   std::log(std::exp(4) + std::exp(6) + std::exp(8))});
  CHECK(logsumexp(x, {1}, true).shape() == Shape{2, 1});
  CHECK(logsumexp(x, {}).item() == doctest::Approx(std::log(sum(exp(x)).item())));
  check_values(logsumexp(f64({1e4, 1e4, -1e4}), {0}), {1e4 + std::log(2.0)});
  check_values(logsumexp(f64({-1e4, -1e4}), {0}), {-1e4 + std::log(2.0)});
  check_values(logsumexp(f64({1e4, 1e4}).to(float32), {0}), {1e4 + std::log(2.0)}, 1e-6);
  // A row of -inf is -inf; a +inf entry makes it +inf.
  CHECK(logsumexp(f64({-inf, -inf}), {0}).item() == -inf);
  CHECK(logsumexp(f64({1, inf}), {0}).item() == inf);
  check_values(logsumexp(f64({-inf, 0.0}), {0}), {0.0});
}

TEST_CASE("logsumexp gradients: softmax over the reduced axes") {
  Tensor x = f64({1e4, 1e4, -1e4}).requires_grad_();
  logsumexp(x, {0}).backward();
  check_values(x.grad(), {0.5, 0.5, 0});
  for (bool keepdim : {false, true}) {
    INFO("keepdim " << keepdim);
    check_gradients([keepdim](const TensorList& a) { return logsumexp(a[0], {1}, keepdim); },
                    {leaf({2, 3}, -2, 2, 17)});
    check_gradients(
        [keepdim](const TensorList& a) {
          return logsumexp(a[0], {0, 2}, keepdim);
        },
        {leaf({2, 2, 3}, -2, 2, 18)});
  }
}

TEST_CASE("norm: p-norms over axes") {
  Tensor v = f64({3, -4});
  CHECK(norm(v).item() == doctest::Approx(5.0));
  CHECK(norm(v, 1).item() == doctest::Approx(7.0));
  CHECK(norm(v, 3).item() == doctest::Approx(std::cbrt(27.0 + 64.0)));
  CHECK(norm(v, inf).item() == 4.0);
  Tensor m = f64({3, 4, 0, 5, 12, 0}, {2, 3});
  check_values(norm(m, 2, {1}), {5, 13});
  check_values(norm(m, 2, {0}), {std::sqrt(34.0), std::sqrt(160.0), 0});
  CHECK(norm(m, 2, {1}, true).shape() == Shape{2, 1});
  CHECK(norm(m).item() == doctest::Approx(std::sqrt(9.0 + 16 + 25 + 144)));
}

TEST_CASE("norm gradients: x / norm for p = 2, zero at the zero vector") {
  Tensor v = f64({3, -4}).requires_grad_();
  norm(v).backward();
  check_values(v.grad(), {0.6, -0.8});
  Tensor z = f64({0, 0, 1, 2}, {2, 2}).requires_grad_();
  norm(z, 2, {1}).sum().backward();
  check_values(z.grad(), {0, 0, 1 / std::sqrt(5.0), 2 / std::sqrt(5.0)});
  for (double p : {2.0, 1.0, 3.0, 1.5}) {
    INFO("p = " << p);
    check_gradients([p](const TensorList& a) { return norm(a[0], p); }, {leaf({2, 3}, 0.2, 1, 19)});
    check_gradients([p](const TensorList& a) { return norm(a[0], p, {1}, true); },
                    {f64({0.5, -0.8, 1.2, -0.3, 0.7, 0.9}, {2, 3}).requires_grad_()});
  }
  check_gradients([](const TensorList& a) { return norm(a[0], inf, {0}); },
                  {leaf({3, 2}, -1, 1, 20)});
}

// ---- softmax, log_softmax ----

TEST_CASE("softmax: values, rows sum to 1, any axis") {
  double e1 = std::exp(1.0), e2 = std::exp(2.0), e3 = std::exp(3.0), s = e1 + e2 + e3;
  check_values(softmax(f64({1, 2, 3})), {e1 / s, e2 / s, e3 / s});
  Tensor x = leaf({2, 3, 4}, -3, 3, 21).detach();
  for (int64_t axis : {0, 1, 2, -1}) {
    INFO("axis " << axis);
    Tensor y = softmax(x, axis);
    CHECK(y.shape() == x.shape());
    CHECK(test::allclose(sum(y, {axis}), ones(sum(y, {axis}).shape(), float64), 1e-12));
    // The same as the definition, computed with plain ops.
    Tensor e = exp(x);
    CHECK(test::allclose(y, div(e, sum(e, {axis}, true)), 1e-12));
  }
  // Shift invariance, float32, a masked entry (-inf) gets exactly 0.
  CHECK(test::allclose(softmax(add(x, 100.0), 1), softmax(x, 1), 1e-12));
  CHECK(test::allclose(softmax(x.to(float32), 2).to(float64), softmax(x, 2), 1e-6));
  check_values(softmax(f64({-inf, 0.0, 0.0})), {0, 0.5, 0.5});
}

TEST_CASE("softmax and log_softmax rows of every length match a double computation") {
  // Contiguous rows run a SIMD register at a time with a scalar tail; lanes along a non-last axis
  // take the strided loop. Both against the same formula in double, in float32 and float64.
  for (int64_t n : {1, 7, 15, 16, 17, 33, 300}) {
    CAPTURE(n);
    Tensor x = leaf({3, n}, -6, 6, 40 + n).detach();
    auto xv = values(x);
    std::vector<double> sm(xv.size()), lsm(xv.size());
    for (int64_t r = 0; r < 3; ++r) {
      double m = -INFINITY, s = 0;
      for (int64_t k = 0; k < n; ++k) m = std::max(m, xv[r * n + k]);
      for (int64_t k = 0; k < n; ++k) s += std::exp(xv[r * n + k] - m);
      for (int64_t k = 0; k < n; ++k) {
        sm[r * n + k] = std::exp(xv[r * n + k] - m) / s;
        lsm[r * n + k] = xv[r * n + k] - m - std::log(s);
      }
    }
    check_values(softmax(x, -1), sm, 1e-12);
    check_values(log_softmax(x, -1), lsm, 1e-12);
    check_values(softmax(x.to(float32), -1), sm, 1e-5);
    check_values(log_softmax(x.to(float32), -1), lsm, 1e-5);
    // The same rows as columns: strided lanes.
    check_values(softmax(x.t().contiguous(), 0).t().contiguous(), sm, 1e-12);
  }
  // A masked (-inf) entry gets exactly 0 (log: -inf); a NaN anywhere in a row makes the row NaN.
  Tensor masked = Tensor::from_vector(std::vector<float>(20, 1.0f), {20});
  masked.data<float>()[17] = -INFINITY;
  auto mv = softmax(masked, -1).to_vector<double>();
  CHECK(mv[17] == 0.0);
  CHECK(mv[0] == doctest::Approx(1.0 / 19));
  CHECK(std::isinf(log_softmax(masked, -1).to_vector<double>()[17]));
  for (int64_t at : {3, 18}) {
    Tensor bad = Tensor::from_vector(std::vector<float>(20, 1.0f), {20});
    bad.data<float>()[at] = NAN;
    for (double v : softmax(bad, -1).to_vector<double>()) CHECK(std::isnan(v));
    for (double v : log_softmax(bad, -1).to_vector<double>()) CHECK(std::isnan(v));
  }
}

TEST_CASE("softmax and log_softmax are finite for logits of +-1e4") {
  Tensor x = f64({1e4, -1e4, 0, -1e4, 1e4, 1e4}, {2, 3});
  for (Dtype d : {float64, float32}) {
    Tensor y = softmax(x.to(d), 1);
    CHECK(all_finite(y));
    check_values(y, {1, 0, 0, 0, 0.5, 0.5});
    Tensor l = log_softmax(x.to(d), 1);
    CHECK(all_finite(l));
    check_values(l, {0, -2e4, -1e4, -2e4 - std::log(2.0), -std::log(2.0), -std::log(2.0)}, 1e-6);
    Tensor xl = x.to(d).detach().requires_grad_();
    sum(mul(log_softmax(xl, 1), x.to(d))).backward();
    CHECK(all_finite(xl.grad()));
    Tensor xs = x.to(d).detach().requires_grad_();
    sum(mul(softmax(xs, 0), x.to(d))).backward();
    CHECK(all_finite(xs.grad()));
  }
}

TEST_CASE("log_softmax equals log(softmax) on moderate values, along any axis") {
  Tensor x = leaf({3, 2, 4}, -5, 5, 22).detach();
  for (int64_t axis : {0, 1, 2, -2}) {
    INFO("axis " << axis);
    CHECK(test::allclose(log_softmax(x, axis), log(softmax(x, axis)), 1e-12));
    CHECK(test::allclose(log_softmax(x, axis), sub(x, logsumexp(x, {axis}, true)), 1e-12));
  }
  CHECK(test::allclose(log_softmax(x.to(float32), 2).to(float64), log_softmax(x, 2), 1e-5));
}

TEST_CASE("softmax and log_softmax gradients along several axes") {
  for (int64_t axis : {0, 1, -1}) {
    INFO("axis " << axis);
    check_gradients([axis](const TensorList& a) { return softmax(a[0], axis); },
                    {leaf({2, 3, 2}, -2, 2, 23)});
    check_gradients([axis](const TensorList& a) { return log_softmax(a[0], axis); },
                    {leaf({2, 3, 2}, -2, 2, 24)});
  }
  check_gradients([](const TensorList& a) { return softmax(a[0]); }, {leaf({4}, -2, 2, 25)});
  check_gradients([](const TensorList& a) { return log_softmax(a[0]); }, {leaf({4}, -2, 2, 26)});
  // The documented vector-Jacobian products.
  Tensor x = leaf({2, 3}, -1, 1, 27);
  Tensor g = leaf({2, 3}, -1, 1, 28).detach();
  Tensor y = softmax(x, 1);
  y.backward(g);
  CHECK(test::allclose(x.grad(), mul(y, sub(g, sum(mul(g, y), {1}, true))), 1e-12));
  Tensor x2 = x.detach().requires_grad_();
  log_softmax(x2, 1).backward(g);
  CHECK(test::allclose(x2.grad(), sub(g, mul(y.detach(), sum(g, {1}, true))), 1e-12));
}

// ---- errors ----

TEST_CASE("a bad axis raises IndexError naming the op and the shape") {
  Tensor x = zeros({2, 3}, float64);
  CHECK_THROWS_WITH_PARTS(sum(x, {2}), IndexError, "sum", "axis 2", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(mean(x, {-3}), IndexError, "mean", "-3", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(sum(x, {1, -1}), IndexError, "sum", "twice", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(var(x, {5}), IndexError, "var", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(ag::std(x, {5}), IndexError, "std", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(amax(x, {2}), IndexError, "amax", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(amin(x, {2}), IndexError, "amin", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(max(x, 2), IndexError, "max", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(min(x, -3), IndexError, "min", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(argmax(x, 2), IndexError, "argmax", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(argmin(x, 2), IndexError, "argmin", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(logsumexp(x, {2}), IndexError, "logsumexp", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(norm(x, 2, {2}), IndexError, "norm", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(softmax(x, 2), IndexError, "softmax", "axis 2", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(log_softmax(x, -3), IndexError, "log_softmax", "[2, 3]");
}

TEST_CASE("reductions with no identity refuse empty axes; bad arguments raise ValueError") {
  Tensor e = zeros({0, 3}, float64);
  CHECK_THROWS_WITH_PARTS(amax(e), IndexError, "amax", "size 0", "[0, 3]");
  CHECK_THROWS_WITH_PARTS(max(e), IndexError, "max", "[0, 3]");
  CHECK_THROWS_WITH_PARTS(max(e, 0), IndexError, "max", "[0, 3]");
  CHECK_THROWS_WITH_PARTS(argmin(e, 0), IndexError, "argmin", "[0, 3]");
  CHECK(amax(e, {1}).shape() == Shape{0});  // nothing to reduce per (empty) row: fine
  // The infinity norm is an extremum too; its error names norm, not the amax it is built on
  // (found by the property test).
  CHECK_THROWS_WITH_PARTS(norm(e, inf, {0}), IndexError, "norm", "size 0", "[0, 3]");
  CHECK(norm(e, inf, {1}).shape() == Shape{0});
  CHECK(sum(e).item() == 0.0);
  CHECK(logsumexp(e, {0}).to_vector<double>() == std::vector<double>(3, -inf));
  Tensor x = ones({3}, float64);
  CHECK_THROWS_WITH_PARTS(norm(x, 0), ValueError, "norm", "p", "[3]");
  CHECK_THROWS_WITH_PARTS(norm(x, -2), ValueError, "norm", "-2");
  CHECK_THROWS_WITH_PARTS(var(x, {}, -1), ValueError, "var", "correction");
}

TEST_CASE("integer tensors raise DtypeError where floats are needed") {
  Tensor i = zeros({2, 3}, int64);
  CHECK_THROWS_WITH_PARTS(mean(i), DtypeError, "mean", "int64", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(var(i), DtypeError, "var", "int64");
  CHECK_THROWS_WITH_PARTS(ag::std(i), DtypeError, "std", "int64");
  CHECK_THROWS_WITH_PARTS(logsumexp(i, {1}), DtypeError, "logsumexp", "int64");
  CHECK_THROWS_WITH_PARTS(norm(i), DtypeError, "norm", "int64");
  CHECK_THROWS_WITH_PARTS(softmax(i), DtypeError, "softmax", "int64", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(log_softmax(i), DtypeError, "log_softmax", "int64");
  CHECK_THROWS_WITH_PARTS(amax(gt(i, i)), DtypeError, "amax", "bool");
}

TEST_CASE("check_tape replays and checks every reduction node on its own") {
  auto fn = [](const TensorList& a) {
    Tensor x = a[0];
    Tensor terms[] = {sum(mul(softmax(x, 1), log_softmax(x, 0))),
                      sum(logsumexp(x, {1})),
                      sum(amax(x, {0})),
                      amin(x),
                      sum(max(x, 1).first),
                      sum(min(x, 0, true).first),
                      norm(x, 3),
                      norm(x, 2, {1}).sum(),
                      var(x, {1}).sum(),
                      mean(x)};
    Tensor total = terms[0];
    for (size_t i = 1; i < std::size(terms); ++i) total = add(total, terms[i]);
    return total;
  };
  TapeReport r = check_tape(fn, {leaf({3, 4}, -1, 1, 29)});
  CHECK_MESSAGE(r.ok, r.to_string());
  std::vector<std::string> ops;
  for (const TapeNodeReport& n : r.nodes) ops.push_back(n.op);
  for (const char* op : {"softmax", "log_softmax", "amax", "amin", "max", "min", "norm"}) {
    INFO(op);
    CHECK(std::find(ops.begin(), ops.end(), op) != ops.end());
  }
}

TEST_CASE("reductions of tensors large enough to be split between threads are exact") {
  // 200,000 elements: above the parallel grain, so a full reduction is shared between threads.
  // Two threads once wrote the same output and one half of the sum was lost.
  Tensor x = ones({200000}, float64);
  for (int rep = 0; rep < 20; ++rep) CHECK(sum(x).item() == 200000.0);
  Tensor r = arange(0, 200000, 1, float64);
  CHECK(amax(r).item() == 199999.0);
  CHECK(amin(r).item() == 0.0);
  CHECK(mean(r).item() == doctest::Approx(99999.5));
  // Strided (every other element of a transposed view) and a reduced inner axis with few rows.
  Tensor m = ones({2, 300000}, float64);
  CHECK(sum(slice(m, 1, 0, 300000, 2)).item() == 300000.0);
  CHECK(sum(m, {1}).to_vector<double>() == std::vector<double>{300000.0, 300000.0});
  CHECK(sum(m.t(), {0}).to_vector<double>() == std::vector<double>{300000.0, 300000.0});
  Tensor f = ones({300000});
  CHECK(sum(f).item() == 300000.0);
}

TEST_CASE("long contiguous reductions (interleaved partial sums) match a double reference") {
  // Lengths around the eight partial results and the threads' grain; float32 sums are accumulated
  // in double, so they match the double reference to float rounding.
  for (int64_t n : {1, 15, 16, 17, 100, 65535, 200001}) {
    CAPTURE(n);
    Tensor x = leaf({n}, -1, 2, 7).detach();
    std::vector<double> v = values(x);
    double ref = 0, mx = -INFINITY;
    for (double e : v) ref += e, mx = std::max(mx, e);
    CHECK(sum(x).item() == doctest::Approx(ref).epsilon(1e-12));
    CHECK(sum(x.to(float32)).item() == doctest::Approx(ref).epsilon(1e-6));
    CHECK(amax(x).item() == mx);
    // A NaN anywhere in the row makes the maximum NaN (each of the eight partial results).
    for (int64_t at : {int64_t(0), n / 2, n - 1}) {
      Tensor y = x.clone();
      y.data<double>()[at] = NAN;
      CHECK(std::isnan(amax(y).item()));
      CHECK(std::isnan(sum(y).item()));
    }
  }
}
