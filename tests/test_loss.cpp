// The fused losses: cross_entropy (class indices) and cross_entropy_soft (probabilities). Values
// against hand computations, every reduction, ignore_index, label smoothing, first and second
// derivatives (float64 gradcheck and gradgradcheck), stability at logits of +-1e4 and the errors.
#include <cmath>
#include <limits>

#include "support.h"

using namespace ag;
using test::all_finite;
using test::check_gradients;
using test::check_values;
using test::f64;
using test::leaf;

namespace {

Tensor labels(std::vector<int64_t> v) { return Tensor::from_vector(v); }
Tensor label(int64_t v) { return Tensor::from_vector(std::vector<int64_t>{v}).reshape({}); }

double lse(const std::vector<double>& row) {
  double s = 0;
  for (double v : row) s += std::exp(v);
  return std::log(s);
}

// logits [[1, 2, 3], [1, 0, -1]]
Tensor two_rows() { return f64({1, 2, 3, 1, 0, -1}, {2, 3}); }

}  // namespace

// ---- cross_entropy with class indices ----

TEST_CASE("cross_entropy: logsumexp(x) - x[target], by hand") {
  Tensor one = cross_entropy(f64({1, 2, 3}, {1, 3}), labels({2}));
  CHECK(one.shape() == Shape{});
  CHECK(one.item() == doctest::Approx(std::log(std::exp(1) + std::exp(2) + std::exp(3)) - 3));
  double l0 = lse({1, 2, 3}) - 3, l1 = lse({1, 0, -1}) - 0;
  Tensor y = labels({2, 1});
  CHECK(cross_entropy(two_rows(), y).item() == doctest::Approx((l0 + l1) / 2));
  CHECK(cross_entropy(two_rows(), y, "sum").item() == doctest::Approx(l0 + l1));
  Tensor none = cross_entropy(two_rows(), y, "none");
  CHECK(none.shape() == Shape{2});
  check_values(none, {l0, l1});
  // One sample: logits [C], target [] -> [] for every reduction.
  Tensor single = cross_entropy(f64({1, 2, 3}, {3}), label(0), "none");
  CHECK(single.shape() == Shape{});
  CHECK(single.item() == doctest::Approx(lse({1, 2, 3}) - 1));
  // float32 logits: float32 loss, same value.
  Tensor l32 = cross_entropy(two_rows().to(float32), y);
  CHECK(l32.dtype() == float32);
  CHECK(l32.item() == doctest::Approx((l0 + l1) / 2).epsilon(1e-6));
  // One recorded op.
  CHECK(cross_entropy(two_rows().requires_grad_(), y).grad_fn()->name() == "cross_entropy");
}

TEST_CASE("cross_entropy gradient: (softmax - onehot) * g / N") {
  Tensor x = two_rows().requires_grad_();
  cross_entropy(x, labels({2, 1})).backward();
  Tensor p = softmax(two_rows(), 1);
  Tensor onehot = f64({0, 0, 1, 0, 1, 0}, {2, 3});
  CHECK(test::allclose(x.grad(), div(sub(p, onehot), full({}, 2.0, float64)), 1e-12));
  // "none" with a per-row g scales each row.
  Tensor xn = two_rows().requires_grad_();
  cross_entropy(xn, labels({2, 1}), "none").backward(f64({3, -1}, {2}));
  CHECK(test::allclose(xn.grad(), mul(sub(p, onehot), f64({3, -1}, {2, 1})), 1e-12));
}

TEST_CASE("cross_entropy: ignore_index rows count for nothing, the mean is over the rest") {
  Tensor x = f64({1, 2, 3, 1, 0, -1, 0.5, 0.5, 0}, {3, 3});
  double l0 = lse({1, 2, 3}) - 3, l2 = lse({0.5, 0.5, 0}) - 0.5;
  CHECK(cross_entropy(x, labels({2, -100, 1})).item() == doctest::Approx((l0 + l2) / 2));
  CHECK(cross_entropy(x, labels({2, -100, 1}), "sum").item() == doctest::Approx(l0 + l2));
  check_values(cross_entropy(x, labels({2, -100, 1}), "none"), {l0, 0, l2});
  // Any index can be the ignored one, even a valid class.
  CHECK(cross_entropy(x, labels({2, 0, 1}), "mean", 0).item() == doctest::Approx((l0 + l2) / 2));
  CHECK(cross_entropy(x, labels({2, 7, 1}), "mean", 7).item() == doctest::Approx((l0 + l2) / 2));
  // Ignored rows get no gradient; the others get (softmax - onehot) / 2.
  Tensor xl = x.detach().requires_grad_();
  cross_entropy(xl, labels({2, -100, 1})).backward();
  check_values(xl.grad()[1], {0, 0, 0});
  Tensor p0 = softmax(x[0], 0);
  CHECK(test::allclose(xl.grad()[0], div(sub(p0, f64({0, 0, 1}, {3})), full({}, 2.0, float64)),
                       1e-12));
}

TEST_CASE("cross_entropy: every row ignored gives NaN for mean (as PyTorch), 0 for sum") {
  Tensor x = two_rows().requires_grad_();
  Tensor loss = cross_entropy(x, labels({-100, -100}));
  CHECK(std::isnan(loss.item()));
  loss.backward();
  check_values(x.grad(), {0, 0, 0, 0, 0, 0});  // the gradient is zero, not NaN
  CHECK(cross_entropy(x, labels({-100, -100}), "sum").item() == 0.0);
}

TEST_CASE("cross_entropy with label smoothing: q = (1 - eps) onehot + eps / C") {
  // loss = (1 - eps) (lse - x[y]) + eps / C sum_c (lse - x_c)
  double eps = 0.1;
  double lse0 = lse({1, 2, 3}), lse1 = lse({1, 0, -1});
  double l0 = (1 - eps) * (lse0 - 3) + eps / 3 * (3 * lse0 - 6);
  double l1 = (1 - eps) * (lse1 - 0) + eps / 3 * (3 * lse1 - 0);
  Tensor y = labels({2, 1});
  check_values(cross_entropy(two_rows(), y, "none", -100, eps), {l0, l1});
  CHECK(cross_entropy(two_rows(), y, "mean", -100, eps).item() == doctest::Approx((l0 + l1) / 2));
  // Smoothing 1: the target is uniform, the label no longer matters.
  CHECK(cross_entropy(two_rows(), labels({0, 0}), "sum", -100, 1.0).item() ==
        doctest::Approx(cross_entropy(two_rows(), labels({2, 1}), "sum", -100, 1.0).item()));
  // Gradient: softmax - q.
  Tensor x = two_rows().requires_grad_();
  cross_entropy(x, y, "sum", -100, eps).backward();
  Tensor q =
      f64({eps / 3, eps / 3, 1 - eps + eps / 3, eps / 3, 1 - eps + eps / 3, eps / 3}, {2, 3});
  CHECK(test::allclose(x.grad(), sub(softmax(two_rows(), 1), q), 1e-12));
  // Ignored rows stay ignored with smoothing.
  check_values(cross_entropy(two_rows(), labels({2, -100}), "none", -100, eps), {l0, 0});
}

TEST_CASE("cross_entropy gradients and second derivatives") {
  Tensor y = labels({2, 0, 1, 2});
  for (const char* reduction : {"mean", "sum", "none"}) {
    INFO(reduction);
    check_gradients(
        [y, reduction](const TensorList& a) { return cross_entropy(a[0], y, reduction); },
        {leaf({4, 3}, -2, 2, 1)});
    // With an ignored row and label smoothing together.
    Tensor yi = labels({2, -100, 1, 0});
    check_gradients(
        [yi, reduction](const TensorList& a) {
          return cross_entropy(a[0], yi, reduction, -100, 0.2);
        },
        {leaf({4, 3}, -2, 2, 2)});
  }
  check_gradients([](const TensorList& a) { return cross_entropy(a[0], label(1)); },
                  {leaf({4}, -2, 2, 3)});
  // A logit tensor that is itself computed (gradient through the fused op into the graph below).
  check_gradients(
      [y](const TensorList& a) { return cross_entropy(matmul(a[0], a[1]), y, "mean", -100, 0.1); },
      {leaf({4, 2}, -1, 1, 4), leaf({2, 3}, -1, 1, 5)});
}

TEST_CASE("cross_entropy: the one-pass gradient equals the recorded composite one") {
  // Plain backward takes the fused path: for small logits the gradient the forward computed,
  // scaled ([5, 40]); for large ones a pass over the logits in the backward ([5, 20000], more
  // than 2^16 elements). create_graph takes the differentiable composite.
  for (int64_t c : {40, 20000}) {
    for (Dtype d : {float64, float32}) {
      for (const char* reduction : {"mean", "sum", "none"}) {
        for (double eps : {0.0, 0.3}) {
          CAPTURE(c);
          CAPTURE(reduction);
          CAPTURE(eps);
          Tensor x = leaf({5, c}, -3, 3, 7).detach().to(d).requires_grad_();
          Tensor y = labels({3, -100, c - 1, 0, 17});
          Tensor loss = cross_entropy(x, y, reduction, -100, eps);
          const bool none = std::string(reduction) == "none";
          Tensor g = none ? leaf({5}, -1, 1, 8).detach().to(d) : full({}, 0.7, d);
          Tensor fused = grad({loss}, {x}, {g}, /*retain_graph=*/true)[0];
          Tensor composite = grad({loss}, {x}, {g}, true, /*create_graph=*/true)[0];
          const double tol = d == float64 ? 1e-12 : 1e-5;
          CHECK(test::allclose(fused, composite, tol, tol));
          // The ignored row (finite logits) gets exactly zero.
          CHECK(sum(abs(fused[1])).item<double>() == 0.0);
          // An output gradient of 1 (the gradient the forward computed, handed on as it is), twice
          // through the retained graph: the second backward finds it unchanged.
          Tensor one = none ? ones({5}, d) : ones({}, d);
          Tensor first = grad({loss}, {x}, {one}, /*retain_graph=*/true)[0];
          Tensor again = grad({loss}, {x}, {one}, /*retain_graph=*/true)[0];
          Tensor composite_one = grad({loss}, {x}, {one}, true, /*create_graph=*/true)[0];
          CHECK(test::allclose(first, composite_one, tol, tol));
          CHECK(test::allclose(again, first, 0, 0));
          // Accumulated into .grad twice, then the graph freed: 2x the gradient.
          loss.backward(none ? one : Tensor(), /*retain_graph=*/true);
          loss.backward(none ? one : Tensor());
          CHECK(test::allclose(x.grad(), mul(first, full({}, 2.0, d)), tol, tol));
        }
      }
    }
  }
}

TEST_CASE("cross_entropy: an ignored row gets a zero gradient even when its logits are infinite") {
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t c : {3, 30000}) {  // the gradient from the forward, and from the backward
    CAPTURE(c);
    Tensor x0 = zeros({2, c}, float64);
    x0[1][0].fill_(inf);
    Tensor x = x0.requires_grad_();
    Tensor loss = cross_entropy(x, labels({1, -100}));
    CHECK(std::isfinite(loss.item()));
    loss.backward();
    CHECK(sum(abs(x.grad()[1])).item<double>() == 0.0);
    CHECK(all_finite(x.grad()));
  }
}

TEST_CASE("cross_entropy is finite for logits of +-1e4") {
  Tensor x = f64({1e4, -1e4, 0, -1e4, 1e4, 1e4}, {2, 3});
  Tensor y = labels({1, 0});
  // Row 0: lse = 1e4, loss = 2e4; row 1: lse = 1e4 + log 2, loss = 2e4 + log 2.
  check_values(cross_entropy(x, y, "none"), {2e4, 2e4 + std::log(2.0)});
  check_values(cross_entropy(x, labels({0, 2}), "none"), {0, std::log(2.0)});
  for (Dtype d : {float32, float64}) {
    for (double eps : {0.0, 0.1}) {
      Tensor xl = x.to(d).detach().requires_grad_();
      Tensor loss = cross_entropy(xl, y, "mean", -100, eps);
      CHECK(all_finite(loss));
      loss.backward();
      CHECK(all_finite(xl.grad()));
    }
    Tensor xl = x.to(d).detach().requires_grad_();
    cross_entropy(xl, y).backward();
    // (softmax - onehot) / 2: row 0 = (1, -1, 0) / 2, row 1 = (-1, 0.5, 0.5) / 2.
    check_values(xl.grad(), {0.5, -0.5, 0, -0.5, 0.25, 0.25}, 1e-6);
  }
}

TEST_CASE("cross_entropy errors name the op, the values and the shapes") {
  Tensor x = zeros({2, 3}, float64);
  CHECK_THROWS_WITH_PARTS(cross_entropy(x, labels({0, 3})), IndexError, "cross_entropy", "target 3",
                          "[0, 3)");
  CHECK_THROWS_WITH_PARTS(cross_entropy(x, labels({-1, 0})), IndexError, "cross_entropy", "-1",
                          "[0, 3)");
  CHECK_THROWS_WITH_PARTS(cross_entropy(x, labels({0, 1, 2})), ShapeError, "cross_entropy",
                          "[2, 3]", "[3]", "[2]");
  CHECK_THROWS_WITH_PARTS(cross_entropy(zeros({3}, float64), labels({1})), ShapeError,
                          "cross_entropy", "[3]", "[1]", "[]");
  CHECK_THROWS_WITH_PARTS(cross_entropy(zeros({2, 3, 4}, float64), labels({0, 1})), ShapeError,
                          "cross_entropy", "[2, 3, 4]");
  CHECK_THROWS_WITH_PARTS(cross_entropy(zeros({2, 0}, float64), labels({0, 1})), ShapeError,
                          "cross_entropy", "[2, 0]");
  CHECK_THROWS_WITH_PARTS(cross_entropy(x, zeros({2}, float64)), DtypeError, "cross_entropy",
                          "int64", "float64");
  CHECK_THROWS_WITH_PARTS(cross_entropy(zeros({2, 3}, int64), labels({0, 1})), DtypeError,
                          "cross_entropy", "int64", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(cross_entropy(x, labels({0, 1}), "avg"), ValueError, "cross_entropy",
                          "avg");
  CHECK_THROWS_WITH_PARTS(cross_entropy(x, labels({0, 1}), "mean", -100, 1.5), ValueError,
                          "cross_entropy", "label_smoothing", "1.5");
}

// ---- cross_entropy_soft ----

TEST_CASE("cross_entropy_soft: -sum q log_softmax(x), every reduction") {
  Tensor q = f64({0.2, 0.3, 0.5, 0, 1, 0}, {2, 3});
  double lse0 = lse({1, 2, 3}), lse1 = lse({1, 0, -1});
  double l0 = 0.2 * (lse0 - 1) + 0.3 * (lse0 - 2) + 0.5 * (lse0 - 3), l1 = lse1 - 0;
  CHECK(cross_entropy_soft(two_rows(), q).item() == doctest::Approx((l0 + l1) / 2));
  CHECK(cross_entropy_soft(two_rows(), q, "sum").item() == doctest::Approx(l0 + l1));
  check_values(cross_entropy_soft(two_rows(), q, "none"), {l0, l1});
  // A one-hot target equals the class index version.
  Tensor onehot = f64({0, 0, 1, 0, 1, 0}, {2, 3});
  CHECK(cross_entropy_soft(two_rows(), onehot).item() ==
        doctest::Approx(cross_entropy(two_rows(), labels({2, 1})).item()));
  // Label smoothing: q' = (1 - eps) q + eps / C, and it matches the index version.
  double eps = 0.3;
  check_values(cross_entropy_soft(two_rows(), q, "none", eps),
               {(1 - eps) * l0 + eps / 3 * (3 * lse0 - 6), (1 - eps) * l1 + eps / 3 * 3 * lse1});
  CHECK(cross_entropy_soft(two_rows(), onehot, "mean", eps).item() ==
        doctest::Approx(cross_entropy(two_rows(), labels({2, 1}), "mean", -100, eps).item()));
  // One sample [C]; float32 targets with float64 logits are converted.
  Tensor single = cross_entropy_soft(f64({1, 2, 3}, {3}), f64({0.2, 0.3, 0.5}, {3}));
  CHECK(single.shape() == Shape{});
  CHECK(single.item() == doctest::Approx(l0));
  CHECK(cross_entropy_soft(two_rows(), q.to(float32)).item() ==
        doctest::Approx((l0 + l1) / 2).epsilon(1e-6));
  CHECK(cross_entropy_soft(two_rows().requires_grad_(), q).grad_fn()->name() ==
        "cross_entropy_soft");
}

TEST_CASE("cross_entropy_soft gradients, to the logits and to the target probabilities") {
  Tensor x = two_rows().requires_grad_();
  Tensor q = f64({0.2, 0.3, 0.5, 0, 1, 0}, {2, 3});
  cross_entropy_soft(x, q, "sum").backward();
  CHECK(test::allclose(x.grad(), sub(softmax(two_rows(), 1), q), 1e-12));
  for (const char* reduction : {"mean", "sum", "none"}) {
    INFO(reduction);
    check_gradients(
        [reduction](const TensorList& a) { return cross_entropy_soft(a[0], a[1], reduction); },
        {leaf({3, 4}, -2, 2, 6), leaf({3, 4}, 0, 1, 7)});
    check_gradients(
        [reduction](const TensorList& a) {
          return cross_entropy_soft(a[0], a[1], reduction, 0.25);
        },
        {leaf({3, 4}, -2, 2, 8), leaf({3, 4}, 0, 1, 9)});
  }
  // Constant targets; softmax of the targets (a graph on both sides); one sample.
  Tensor qc = softmax(leaf({3, 4}, -1, 1, 10).detach(), 1);
  check_gradients([qc](const TensorList& a) { return cross_entropy_soft(a[0], qc); },
                  {leaf({3, 4}, -2, 2, 11)});
  check_gradients(
      [](const TensorList& a) { return cross_entropy_soft(a[0], softmax(a[1], 1), "mean", 0.1); },
      {leaf({2, 3}, -2, 2, 12), leaf({2, 3}, -2, 2, 13)});
  check_gradients([](const TensorList& a) { return cross_entropy_soft(a[0], a[1]); },
                  {leaf({4}, -2, 2, 14), leaf({4}, 0, 1, 15)});
}

TEST_CASE("cross_entropy_soft is finite for logits of +-1e4 and for masked (-inf) logits") {
  Tensor x = f64({1e4, -1e4, 0}, {1, 3});
  Tensor q = f64({0.5, 0.5, 0}, {1, 3});
  CHECK(cross_entropy_soft(x, q).item() == doctest::Approx(1e4));  // 0.5 * 0 + 0.5 * 2e4
  for (Dtype d : {float32, float64}) {
    Tensor xl = x.to(d).detach().requires_grad_();
    Tensor loss = cross_entropy_soft(xl, q.to(d));
    CHECK(all_finite(loss));
    loss.backward();
    CHECK(all_finite(xl.grad()));
    check_values(xl.grad(), {0.5, -0.5, 0}, 1e-6);
  }
  // No target mass on a -inf logit: the term is skipped, not 0 * inf.
  double inf = std::numeric_limits<double>::infinity();
  Tensor masked = f64({-inf, 0, 0}, {1, 3}).requires_grad_();
  Tensor loss = cross_entropy_soft(masked, f64({0, 0.5, 0.5}, {1, 3}));
  CHECK(loss.item() == doctest::Approx(std::log(2.0)));
  loss.backward();
  check_values(masked.grad(), {0, 0, 0});
}

TEST_CASE("cross_entropy_soft errors") {
  Tensor x = zeros({2, 3}, float64);
  CHECK_THROWS_WITH_PARTS(cross_entropy_soft(x, zeros({2, 4}, float64)), ShapeError,
                          "cross_entropy_soft", "[2, 4]", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(cross_entropy_soft(x, zeros({3}, float64)), ShapeError,
                          "cross_entropy_soft", "[3]", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(cross_entropy_soft(x, zeros({2, 3}, int64)), DtypeError,
                          "cross_entropy_soft", "int64");
  CHECK_THROWS_WITH_PARTS(cross_entropy_soft(zeros({2, 3}, int64), x), DtypeError,
                          "cross_entropy_soft", "int64");
  CHECK_THROWS_WITH_PARTS(cross_entropy_soft(x, x, "avg"), ValueError, "cross_entropy_soft", "avg");
  CHECK_THROWS_WITH_PARTS(cross_entropy_soft(x, x, "mean", -0.1), ValueError, "cross_entropy_soft",
                          "label_smoothing");
}

TEST_CASE("check_tape replays and checks the fused loss nodes on their own") {
  Tensor y = labels({2, -100, 0});
  auto fn = [y](const TensorList& a) {
    Tensor hard = cross_entropy(a[0], y, "mean", -100, 0.1);  // recorded first
    return add(hard, cross_entropy_soft(a[0], a[1], "sum"));
  };
  TapeReport r = check_tape(fn, {leaf({3, 4}, -2, 2, 16), leaf({3, 4}, 0, 1, 17)});
  CHECK_MESSAGE(r.ok, r.to_string());
  CHECK(r.nodes_skipped == 0);
  REQUIRE(r.nodes.size() == 3);
  CHECK(r.nodes[0].op == "cross_entropy");
  CHECK(r.nodes[1].op == "cross_entropy_soft");
}
