// batch_norm and group_norm: values by hand, the running statistics, training against evaluation,
// first and second derivatives in float64, and the errors.
#include <cmath>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::check_values;
using test::leaf;

TEST_CASE("batch_norm in training normalises each channel over the batch and space") {
  // [N = 2, C = 2, L = 2]: channel 0 holds 1, 2, 3, 4 (mean 2.5, var 1.25), channel 1 all 5.
  Tensor x = test::f64({1, 2, 5, 5, 3, 4, 5, 5}, {2, 2, 2});
  Tensor rm = zeros({2}, float64), rv = ones({2}, float64);
  Tensor y = batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.1, 1e-5);
  const double s = std::sqrt(1.25 + 1e-5);
  check_values(y, {-1.5 / s, -0.5 / s, 0, 0, 0.5 / s, 1.5 / s, 0, 0});
  // running = 0.9 running + 0.1 batch, with the unbiased variance (n = 4: 1.25 * 4/3).
  check_values(rm, {0.25, 0.5});
  check_values(rv, {0.9 + 0.1 * 1.25 * 4.0 / 3.0, 0.9});
  // Weight and bias scale and shift per channel.
  Tensor w = test::f64({2, 3}), b = test::f64({-1, 1});
  Tensor ya = batch_norm(x, Tensor(), Tensor(), w, b);
  check_values(ya, {-3 / s - 1, -1 / s - 1, 1, 1, 1 / s - 1, 3 / s - 1, 1, 1});
}

TEST_CASE("batch_norm in evaluation uses the running statistics and leaves them alone") {
  Tensor x = leaf({3, 2, 2, 2}, -1, 1, 1).detach();
  Tensor rm = test::f64({0.5, -1}), rv = test::f64({4, 0.25});
  Tensor y = batch_norm(x, rm, rv, Tensor(), Tensor(), false, 0.1, 0.0);
  Tensor want = (x - rm.reshape({1, 2, 1, 1})) / rv.reshape({1, 2, 1, 1}).sqrt();
  CHECK(test::allclose(y, want, 1e-12));
  check_values(rm, {0.5, -1});
  check_values(rv, {4, 0.25});
  // 4-D training statistics: each channel's output has mean 0 and (biased) variance ~1.
  Tensor t = batch_norm(x, Tensor(), Tensor());
  CHECK(test::allclose(t.mean({0, 2, 3}), zeros({2}, float64), 1e-12));
  CHECK(test::allclose(var(t, {0, 2, 3}, 0), ones({2}, float64), 1e-3));
  // float32 inputs with float32 running statistics.
  Tensor r32 = zeros({2});
  Tensor y32 = batch_norm(x.to(float32), r32, ones({2}));
  CHECK(y32.dtype() == float32);
  CHECK(test::allclose(y32.to(float64), t, 1e-5, 1e-4));
  CHECK(test::allclose(r32.to(float64), x.mean({0, 2, 3}) * 0.1, 1e-6));
}

TEST_CASE("batch_norm gradients and second derivatives (float64)") {
  // Training: the batch statistics depend on x.
  check_gradients(
      [](const TensorList& a) { return batch_norm(a[0], Tensor(), Tensor(), a[1], a[2], true); },
      {leaf({3, 2, 2, 2}, -1, 1, 2), leaf({2}, 0.5, 1.5, 3), leaf({2}, -1, 1, 4)});
  check_gradients([](const TensorList& a) { return batch_norm(a[0], Tensor(), Tensor()); },
                  {leaf({4, 3}, -1, 1, 5)});
  // Evaluation: an affine map of x.
  Tensor rm = test::f64({0.1, -0.2}), rv = test::f64({0.5, 2});
  check_gradients(
      [rm, rv](const TensorList& a) { return batch_norm(a[0], rm, rv, a[1], a[2], false); },
      {leaf({2, 2, 3}, -1, 1, 6), leaf({2}, 0.5, 1.5, 7), leaf({2}, -1, 1, 8)});
}

TEST_CASE("group_norm normalises groups of channels per sample") {
  // One sample, 4 channels of 2 values, 2 groups: group 0 = {1, 2, 3, 4}, group 1 = {0, 0, 2, 2}.
  Tensor x = test::f64({1, 2, 3, 4, 0, 0, 2, 2}, {1, 4, 2});
  Tensor y = group_norm(x, 2, Tensor(), Tensor(), 0.0);
  const double s = std::sqrt(1.25);
  check_values(y, {-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s, -1, -1, 1, 1});
  Tensor w = test::f64({1, 2, 3, 4}), b = test::f64({0, 0, 1, 1});
  check_values(group_norm(x, 2, w, b, 0.0), {-1.5 / s, -0.5 / s, 1 / s, 3 / s, -2, -2, 5, 5});
  // One group is layer norm over all of a sample; C groups is instance norm.
  Tensor z = leaf({2, 4, 3, 3}, -1, 1, 9).detach();
  CHECK(test::allclose(group_norm(z, 1), layer_norm(z, {4, 3, 3}), 1e-12));
  Tensor inst = group_norm(z, 4);
  CHECK(test::allclose(inst.mean({2, 3}), zeros({2, 4}, float64), 1e-12));
}

TEST_CASE("group_norm gradients and second derivatives (float64)") {
  check_gradients([](const TensorList& a) { return group_norm(a[0], 2, a[1], a[2]); },
                  {leaf({2, 4, 2, 2}, -1, 1, 10), leaf({4}, 0.5, 1.5, 11), leaf({4}, -1, 1, 12)});
  check_gradients([](const TensorList& a) { return group_norm(a[0], 3); },
                  {leaf({2, 3, 4}, -1, 1, 13)});
}

TEST_CASE("batch_norm and group_norm errors name the op and the shapes") {
  Tensor x = zeros({4, 3, 2});
  CHECK_THROWS_WITH_PARTS(batch_norm(zeros({3}), Tensor(), Tensor()), ShapeError, "batch_norm",
                          "[3]");
  CHECK_THROWS_WITH_PARTS(batch_norm(x, zeros({2}), ones({3})), ShapeError, "batch_norm",
                          "running_mean", "[2]", "[4, 3, 2]");
  CHECK_THROWS_WITH_PARTS(batch_norm(x, Tensor(), Tensor(), ones({4})), ShapeError, "batch_norm",
                          "weight", "[4]");
  CHECK_THROWS_WITH_PARTS(batch_norm(zeros({1, 3}), Tensor(), Tensor()), ValueError, "batch_norm",
                          "more than one value", "[1, 3]");
  CHECK_THROWS_WITH_PARTS(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false), ValueError,
                          "batch_norm", "running");
  CHECK_THROWS_WITH_PARTS(group_norm(zeros({2, 6, 2}), 4), ShapeError, "group_norm", "4 groups",
                          "6 channels", "[2, 6, 2]");
  CHECK_THROWS_WITH_PARTS(group_norm(zeros({2, 6, 2}), 3, ones({3})), ShapeError, "group_norm",
                          "weight", "[3]");
}
