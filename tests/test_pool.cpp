// max_pool2d, avg_pool2d and adaptive_avg_pool2d: values by hand, ties and NaN, padding, first
// and second derivatives in float64 (max pooling: the one-pass backward and the recorded scatter),
// and the errors.
#include <cmath>
#include <limits>
#include <vector>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::check_values;
using test::leaf;

TEST_CASE("max_pool2d picks each window's maximum and reports where it was") {
  Tensor x = test::f64({1, 5, 2, 0,  //
                        3, 4, 8, 1,  //
                        0, 2, 7, 6,  //
                        9, 1, 3, 6},
                       {1, 1, 4, 4});
  auto [y, idx] = max_pool2d_with_indices(x, 2);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  check_values(y, {5, 8, 9, 7});
  CHECK(idx.to_vector<int64_t>() == std::vector<int64_t>{1, 6, 12, 10});
  // Stride 1 and a 3x3 window.
  check_values(max_pool2d(x, 3, 1), {8, 8, 9, 8});
  // Padding 1 with a 2x2 window and stride 2: the corners see one real value each.
  check_values(max_pool2d(x, 2, 2, 1), {1, 5, 0, 3, 8, 6, 9, 3, 6});
  // Negative values with padding: the padding never wins.
  Tensor neg = test::f64({-3, -2, -5, -1}, {1, 1, 2, 2});
  check_values(max_pool2d(neg, 2, 1, 1), {-3, -2, -2, -3, -1, -1, -5, -1, -1});
  // A rectangular window over channels and a batch: each plane on its own.
  Tensor b = leaf({2, 3, 4, 6}, -1, 1, 5).detach();
  Tensor yb = max_pool2d(b, Size2(2, 3));
  CHECK(yb.shape() == Shape{2, 3, 2, 2});
  CHECK(yb.at({1, 2, 1, 0}) ==
        doctest::Approx(amax(b.select(0, 1).select(0, 2).slice(0, 2, 4).slice(1, 0, 3)).item()));
}

TEST_CASE("max_pool2d ties go to the first position in row-major order; NaN propagates") {
  Tensor x = test::f64({2, 2, 2, 2}, {1, 1, 2, 2});
  auto [y, idx] = max_pool2d_with_indices(x.clone().requires_grad_(), 2);
  CHECK(idx.item<int64_t>() == 0);
  Tensor xr = x.clone().requires_grad_();
  max_pool2d(xr, 2).sum().backward();
  check_values(xr.grad(), {1, 0, 0, 0});
  Tensor z = test::f64({1, 3, 3, 0}, {1, 1, 2, 2});  // tie between positions 1 and 2
  CHECK(max_pool2d_with_indices(z, 2).second.item<int64_t>() == 1);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor n = test::f64({1, nan, 5, 2}, {1, 1, 2, 2});
  CHECK(std::isnan(max_pool2d(n, 2).item()));
  CHECK(max_pool2d_with_indices(n, 2).second.item<int64_t>() == 1);
  // All -inf: still a position of the window.
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(max_pool2d_with_indices(test::f64({-inf, -inf, -inf, -inf}, {1, 1, 2, 2}), 2)
            .second.item<int64_t>() == 0);
}

TEST_CASE("max_pool2d: the 2x2 stride-2 loop and the general one agree, ties and NaN included") {
  // The common window has a loop of its own (kernels/max_pool.h): compared with a window-by-window
  // reference of the documented rule (first maximum in row-major order, a NaN over any number).
  // Width 9 fits one SIMD register of outputs; width 37 (18 outputs) needs a full one and a tail.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t W : {9, 37})
    for (Dtype dt : {float32, float64}) {
      CAPTURE(W);
      const int64_t H = 7, OH = 3, OW = W / 2;
      // Values from a small set, so that many windows tie; an odd size drops the last row/column.
      std::vector<double> v;
      for (int64_t i = 0; i < 2 * 3 * H * W; ++i)
        v.push_back(i % 17 == 5 ? nan : double((i * 7) % 5));
      Tensor x = Tensor::from_vector(v, {2, 3, H, W}).to(dt);
      auto [y, idx] = max_pool2d_with_indices(x, 2);
      REQUIRE(y.shape() == Shape{2, 3, OH, OW});
      std::vector<double> yv = y.to(float64).to_vector<double>();
      std::vector<int64_t> iv = idx.to_vector<int64_t>();
      for (int64_t pl = 0, o = 0; pl < 6; ++pl)
        for (int64_t i = 0; i < OH; ++i)
          for (int64_t j = 0; j < OW; ++j, ++o) {
            int64_t at = -1;
            double m = 0;
            for (int64_t u = 0; u < 2; ++u)
              for (int64_t w = 0; w < 2; ++w) {
                const int64_t pos = (2 * i + u) * W + 2 * j + w;
                const double c = v[size_t(pl * H * W + pos)];
                if (at < 0 || c > m || (std::isnan(c) && !std::isnan(m))) {
                  m = c;
                  at = pos;
                }
              }
            CHECK(iv[size_t(o)] == at);
            CHECK((std::isnan(m) ? std::isnan(yv[size_t(o)]) : yv[size_t(o)] == m));
          }
    }
}

TEST_CASE("max_pool2d gradients and second derivatives (float64)") {
  // Random values: no ties, so the max is differentiable at the points checked.
  check_gradients([](const TensorList& a) { return max_pool2d(a[0], 2); },
                  {leaf({2, 2, 4, 4}, -1, 1, 10)});
  check_gradients([](const TensorList& a) { return max_pool2d(a[0], 3, 2, 1); },
                  {leaf({1, 2, 5, 6}, -1, 1, 11)});
  // Overlapping windows (stride 1): one input can win several windows; its gradients add.
  check_gradients([](const TensorList& a) { return max_pool2d(a[0], Size2(2, 3), 1); },
                  {leaf({1, 1, 4, 5}, -1, 1, 12)});
}

TEST_CASE("max_pool2d: the one-pass backward equals the recorded scatter") {
  // A plain backward runs the direct scatter; create_graph runs scatter_add (recorded).
  for (Dtype d : {float64, float32}) {
    Tensor x = leaf({4, 8, 16, 16}, -1, 1, 13).detach().to(d).requires_grad_();
    Tensor y = max_pool2d(x, 3, 1, 1);
    Tensor g = leaf(y.shape(), -1, 1, 14).detach().to(d);
    Tensor fast = grad({y}, {x}, {g}, /*retain_graph=*/true)[0];
    Tensor recorded = grad({y}, {x}, {g}, false, /*create_graph=*/true)[0];
    CHECK(test::allclose(fast, recorded, 1e-6, 1e-6));
    CHECK(test::values(fast.sum())[0] == doctest::Approx(test::values(g.sum())[0]).epsilon(1e-4));
  }
}

TEST_CASE("avg_pool2d averages each window; count_include_pad chooses the divisor") {
  Tensor x = test::f64({1, 2, 3, 4,  //
                        5, 6, 7, 8,  //
                        9, 10, 11, 12},
                       {1, 1, 3, 4});
  check_values(avg_pool2d(x, 2), {3.5, 5.5});
  check_values(avg_pool2d(x, 2, 1), {3.5, 4.5, 5.5, 7.5, 8.5, 9.5});
  // Padding 1, 2x2 windows, stride 2: corner window (0,0) holds only x[0][0] = 1.
  Tensor p = avg_pool2d(x, 2, 2, 1);
  CHECK(p.shape() == Shape{1, 1, 2, 3});
  check_values(p, {0.25, 1.25, 1.0, 3.5, 8.5, 5.0});
  check_values(avg_pool2d(x, 2, 2, 1, /*count_include_pad=*/false), {1, 2.5, 4, 7, 8.5, 10});
  // Each channel and sample on its own.
  Tensor b = leaf({2, 3, 4, 4}, -1, 1, 20).detach();
  Tensor yb = avg_pool2d(b, 2);
  CHECK(yb.shape() == Shape{2, 3, 2, 2});
  CHECK(yb.at({1, 2, 0, 1}) ==
        doctest::Approx(b.select(0, 1).select(0, 2).slice(0, 0, 2).slice(1, 2, 4).mean().item()));
}

TEST_CASE("avg_pool2d gradients and second derivatives (float64)") {
  check_gradients([](const TensorList& a) { return avg_pool2d(a[0], 2); },
                  {leaf({2, 2, 4, 4}, -1, 1, 21)});
  check_gradients([](const TensorList& a) { return avg_pool2d(a[0], 3, 2, 1, false); },
                  {leaf({1, 2, 5, 4}, -1, 1, 22)});
}

TEST_CASE("adaptive_avg_pool2d: windows floor(i H / OH) .. ceil((i + 1) H / OH)") {
  // H = 5 to 3 rows: windows [0, 2), [1, 4), [3, 5).
  Tensor x = test::f64({1, 2, 3, 4, 5}, {1, 1, 5, 1});
  check_values(adaptive_avg_pool2d(x, Size2(3, 1)), {1.5, 3, 4.5});
  // Output 1x1 is the global mean; output = input size is the identity.
  Tensor b = leaf({2, 3, 4, 6}, -1, 1, 30).detach();
  CHECK(test::allclose(adaptive_avg_pool2d(b, 1), b.mean({2, 3}, true), 1e-12));
  CHECK(test::allclose(adaptive_avg_pool2d(b, Size2(4, 6)), b, 1e-12));
  // Dividing sizes: the same as avg_pool2d.
  CHECK(test::allclose(adaptive_avg_pool2d(b, Size2(2, 3)), avg_pool2d(b, 2), 1e-12));
  CHECK(adaptive_avg_pool2d(b.to(float32), 3).dtype() == float32);
}

TEST_CASE("adaptive_avg_pool2d gradients and second derivatives (float64)") {
  check_gradients([](const TensorList& a) { return adaptive_avg_pool2d(a[0], Size2(3, 2)); },
                  {leaf({2, 2, 5, 4}, -1, 1, 31)});
}

TEST_CASE("pooling errors name the op and the shapes") {
  Tensor x = zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH_PARTS(max_pool2d(zeros({3, 4, 4}), 2), ShapeError, "max_pool2d", "4-D",
                          "[3, 4, 4]");
  CHECK_THROWS_WITH_PARTS(max_pool2d(x, 5), ShapeError, "max_pool2d", "larger", "[2, 3, 4, 4]");
  CHECK_THROWS_WITH_PARTS(max_pool2d(x, 2, 2, 2), ValueError, "max_pool2d", "padding",
                          "half the kernel");
  CHECK_THROWS_WITH_PARTS(max_pool2d(x, 0), ValueError, "max_pool2d", "kernel");
  CHECK_THROWS_WITH_PARTS(avg_pool2d(x, Size2(2, 6)), ShapeError, "avg_pool2d", "larger",
                          "[2, 3, 4, 4]");
  CHECK_THROWS_WITH_PARTS(avg_pool2d(zeros({2, 4}), 2), ShapeError, "avg_pool2d", "[2, 4]");
  CHECK_THROWS_WITH_PARTS(adaptive_avg_pool2d(x, 0), ValueError, "adaptive_avg_pool2d",
                          "[2, 3, 4, 4]");
  CHECK_THROWS_WITH_PARTS(adaptive_avg_pool2d(zeros({4}), 2), ShapeError, "adaptive_avg_pool2d",
                          "[4]");
  CHECK_THROWS_WITH_PARTS(max_pool2d(zeros({1, 1, 2, 2}, int64), 2), DtypeError, "max_pool2d");
}
