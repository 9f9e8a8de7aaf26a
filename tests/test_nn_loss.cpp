// Losses: values against hand computations, every reduction, gradients (first and second order, in
// float64), stability at logits of +-1e4 and the errors.
#include <cmath>

#include "nn/nn.h"
#include "support.h"

using namespace ag;
using test::all_finite;
using test::check_gradients;
using test::leaf;

namespace {

Tensor f64(std::initializer_list<std::initializer_list<double>> rows) {
  return Tensor(rows).to(float64);
}
Tensor labels(std::vector<int64_t> v) { return Tensor::from_vector(v); }

// log(sum(exp(row))) and the row's cross-entropy at class y, the long way.
double logsumexp_of(const std::vector<double>& row) {
  double s = 0;
  for (double v : row) s += std::exp(v);
  return std::log(s);
}

double sigmoid_of(double x) { return 1 / (1 + std::exp(-x)); }

}  // namespace

// ---- mse_loss ----

TEST_CASE("mse_loss: squared differences, mean / sum / none") {
  Tensor pred = Tensor({1.0, 2.0, 3.0}), target = Tensor({0.0, 2.0, 5.0});
  CHECK(nn::mse_loss(pred, target).item() == doctest::Approx(5.0 / 3));
  CHECK(nn::mse_loss(pred, target, "sum").item() == doctest::Approx(5.0));
  CHECK(nn::mse_loss(pred, target, "none").to_vector<float>() == std::vector<float>{1, 0, 4});
  // A target that broadcasts to the prediction's shape.
  Tensor p2 = Tensor({{1.0, 2.0, 3.0}, {0.0, 0.0, 0.0}});
  CHECK(nn::mse_loss(p2, target, "sum").item() == doctest::Approx(5.0 + 29.0));
}

TEST_CASE("mse_loss gradients") {
  for (const char* reduction : {"mean", "sum", "none"}) {
    INFO(reduction);
    check_gradients(
        [reduction](const TensorList& a) { return nn::mse_loss(a[0], a[1], reduction); },
        {leaf({3, 2}, -1.0, 1.0, 1), leaf({3, 2}, -1.0, 1.0, 2)});
  }
  check_gradients([](const TensorList& a) { return nn::mse_loss(a[0], a[1]); },
                  {leaf({3, 2}, -1.0, 1.0, 3), leaf({2}, -1.0, 1.0, 4)});
}

TEST_CASE("mse_loss errors") {
  CHECK_THROWS_WITH_PARTS(nn::mse_loss(zeros({3}), zeros({4})), ShapeError, "mse_loss", "[3]",
                          "[4]");
  CHECK_THROWS_WITH_PARTS(nn::mse_loss(zeros({3}), zeros({2, 3})), ShapeError, "mse_loss", "[3]",
                          "[2, 3]");
  CHECK_THROWS_WITH_PARTS(nn::mse_loss(zeros({3}), zeros({3}), "avg"), ValueError, "mse_loss",
                          "avg");
}

// ---- cross_entropy with class indices ----

TEST_CASE("cross_entropy with class indices: logsumexp(x) - x[y], every reduction") {
  Tensor x = f64({{1.0, 2.0, 3.0}, {1.0, 0.0, -1.0}});
  Tensor y = labels({2, 0});
  double l0 = logsumexp_of({1, 2, 3}) - 3, l1 = logsumexp_of({1, 0, -1}) - 1;
  CHECK(nn::cross_entropy(x, y).item() == doctest::Approx((l0 + l1) / 2));
  CHECK(nn::cross_entropy(x, y, "sum").item() == doctest::Approx(l0 + l1));
  Tensor none = nn::cross_entropy(x, y, "none");
  CHECK(none.shape() == Shape{2});
  CHECK(none.at({0}) == doctest::Approx(l0));
  CHECK(none.at({1}) == doctest::Approx(l1));
  // One sample: logits [C], target [].
  Tensor one = nn::cross_entropy(Tensor({1.0, 2.0, 3.0}).to(float64),
                                 Tensor::from_vector(std::vector<int64_t>{1}).reshape({}));
  CHECK(one.item() == doctest::Approx(logsumexp_of({1, 2, 3}) - 2));
}

TEST_CASE("cross_entropy: ignore_index rows count for nothing, the mean is over the rest") {
  Tensor x = f64({{1.0, 2.0, 3.0}, {1.0, 0.0, -1.0}, {0.5, 0.5, 0.0}});
  double l0 = logsumexp_of({1, 2, 3}) - 3, l2 = logsumexp_of({0.5, 0.5, 0}) - 0;
  CHECK(nn::cross_entropy(x, labels({2, -100, 2})).item() == doctest::Approx((l0 + l2) / 2));
  CHECK(nn::cross_entropy(x, labels({2, 1, 2}), "mean", 1).item() ==
        doctest::Approx((l0 + l2) / 2));
  CHECK(nn::cross_entropy(x, labels({2, -100, 2}), "sum").item() == doctest::Approx(l0 + l2));
  Tensor none = nn::cross_entropy(x, labels({2, -100, 2}), "none");
  CHECK(none.at({1}) == 0.0);
  // The ignored row gets no gradient.
  Tensor xl = x.detach().requires_grad_();
  nn::cross_entropy(xl, labels({2, -100, 2})).backward();
  CHECK(xl.grad()[1].to_vector<double>() == std::vector<double>{0, 0, 0});
}

TEST_CASE("cross_entropy with label smoothing mixes the one-hot target with the uniform") {
  // q = (1 - eps) onehot + eps / C, loss = -sum q log_softmax(x)
  //   = (1 - eps) (lse - x[y]) + eps / C * sum_c (lse - x_c)
  Tensor x = f64({{1.0, 2.0, 3.0}, {1.0, 0.0, -1.0}});
  double eps = 0.1;
  double lse0 = logsumexp_of({1, 2, 3}), lse1 = logsumexp_of({1, 0, -1});
  double l0 = (1 - eps) * (lse0 - 3) + eps / 3 * (3 * lse0 - 6);
  double l1 = (1 - eps) * (lse1 - 1) + eps / 3 * (3 * lse1 - 0);
  CHECK(nn::cross_entropy(x, labels({2, 0}), "mean", -100, eps).item() ==
        doctest::Approx((l0 + l1) / 2));
}

TEST_CASE("cross_entropy (indices) gradients, every reduction, ignore_index, label smoothing") {
  Tensor y = labels({2, 0, 1, 2});
  for (const char* reduction : {"mean", "sum", "none"}) {
    INFO(reduction);
    check_gradients(
        [y, reduction](const TensorList& a) { return nn::cross_entropy(a[0], y, reduction); },
        {leaf({4, 3}, -2.0, 2.0, 5)});
  }
  Tensor yi = labels({2, -100, 1, 2});
  check_gradients([yi](const TensorList& a) { return nn::cross_entropy(a[0], yi); },
                  {leaf({4, 3}, -2.0, 2.0, 6)});
  check_gradients(
      [y](const TensorList& a) { return nn::cross_entropy(a[0], y, "mean", -100, 0.2); },
      {leaf({4, 3}, -2.0, 2.0, 7)});
}

TEST_CASE("cross_entropy is finite for logits of +-1e4") {
  Tensor x = f64({{1e4, -1e4, 0.0}, {-1e4, 1e4, 1e4}});
  Tensor y = labels({1, 0});
  // Row 0: lse = 1e4, loss = 1e4 - (-1e4); row 1: lse = 1e4 + log 2, loss = 2e4 + log 2.
  CHECK(nn::cross_entropy(x, y, "none").at({0}) == doctest::Approx(2e4));
  CHECK(nn::cross_entropy(x, y, "none").at({1}) == doctest::Approx(2e4 + std::log(2.0)));
  for (Dtype d : {float32, float64}) {
    Tensor xl = x.to(d).detach().requires_grad_();
    Tensor loss = nn::cross_entropy(xl, y);
    CHECK(all_finite(loss));
    loss.backward();
    CHECK(all_finite(xl.grad()));
    // d/dx = (softmax - onehot) / N: row 0 = (1, -1, 0) / 2.
    CHECK(xl.grad().at({0, 0}) == doctest::Approx(0.5));
    CHECK(xl.grad().at({0, 1}) == doctest::Approx(-0.5));
  }
}

TEST_CASE("cross_entropy errors: a class index out of range names it") {
  Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_PARTS(nn::cross_entropy(x, labels({0, 3})), IndexError, "cross_entropy", "3");
  CHECK_THROWS_WITH_PARTS(nn::cross_entropy(x, labels({-1, 0})), IndexError, "cross_entropy", "-1");
  CHECK_THROWS_AS(nn::cross_entropy(x, labels({0, 1, 2})), ShapeError);
  CHECK_THROWS_WITH_PARTS(nn::cross_entropy(x, labels({0, 1}), "avg"), ValueError, "avg");
}

// ---- cross_entropy with probability targets ----

TEST_CASE("cross_entropy with probability targets: -sum q log_softmax(x)") {
  Tensor x = f64({{1.0, 2.0, 3.0}, {1.0, 0.0, -1.0}});
  Tensor q = f64({{0.2, 0.3, 0.5}, {1.0, 0.0, 0.0}});
  double lse0 = logsumexp_of({1, 2, 3}), lse1 = logsumexp_of({1, 0, -1});
  double l0 = 0.2 * (lse0 - 1) + 0.3 * (lse0 - 2) + 0.5 * (lse0 - 3);
  double l1 = lse1 - 1;
  CHECK(nn::cross_entropy(x, q).item() == doctest::Approx((l0 + l1) / 2));
  CHECK(nn::cross_entropy(x, q, "sum").item() == doctest::Approx(l0 + l1));
  Tensor none = nn::cross_entropy(x, q, "none");
  CHECK(none.at({0}) == doctest::Approx(l0));
  CHECK(none.at({1}) == doctest::Approx(l1));
  // A one-hot probability target is the same as the class index.
  CHECK(nn::cross_entropy(x, f64({{0, 0, 1}, {1, 0, 0}})).item() ==
        doctest::Approx(nn::cross_entropy(x, labels({2, 0})).item()));
  // Label smoothing applies to probability targets too: q' = (1 - eps) q + eps / C.
  double eps = 0.3;
  double s1 = (1 - eps) * l1 + eps / 3 * (3 * lse1 - 0);
  CHECK(nn::cross_entropy(x, q, "none", -100, eps).at({1}) == doctest::Approx(s1));
}

TEST_CASE("cross_entropy (probabilities) gradients and stability") {
  Tensor q = f64({{0.2, 0.3, 0.5}, {1.0, 0.0, 0.0}, {0.1, 0.1, 0.8}});
  for (const char* reduction : {"mean", "sum", "none"}) {
    INFO(reduction);
    check_gradients(
        [q, reduction](const TensorList& a) { return nn::cross_entropy(a[0], q, reduction); },
        {leaf({3, 3}, -2.0, 2.0, 8)});
  }
  Tensor x = f64({{1e4, -1e4, 0.0}}).requires_grad_();
  Tensor loss = nn::cross_entropy(x, f64({{0.5, 0.5, 0.0}}));
  CHECK(loss.item() == doctest::Approx(1e4));  // 0.5 * 0 + 0.5 * 2e4
  loss.backward();
  CHECK(all_finite(x.grad()));
}

// ---- nll_loss ----

TEST_CASE("nll_loss: -log_probs[i, y_i]; on log_softmax it equals cross_entropy") {
  Tensor lp = f64({{-0.5, -1.5, -2.0}, {-3.0, -0.1, -1.0}});
  Tensor y = labels({1, 2});
  CHECK(nn::nll_loss(lp, y).item() == doctest::Approx((1.5 + 1.0) / 2));
  CHECK(nn::nll_loss(lp, y, "sum").item() == doctest::Approx(2.5));
  CHECK(nn::nll_loss(lp, y, "none").to_vector<double>() == std::vector<double>{1.5, 1.0});
  // Ignored rows: the mean is over the others.
  CHECK(nn::nll_loss(lp, labels({1, -100})).item() == doctest::Approx(1.5));
  CHECK(nn::nll_loss(lp, labels({1, 0}), "mean", 0).item() == doctest::Approx(1.5));
  Tensor x = f64({{1.0, 2.0, 3.0}, {1.0, 0.0, -1.0}});
  CHECK(nn::nll_loss(log_softmax(x, 1), labels({2, 0})).item() ==
        doctest::Approx(nn::cross_entropy(x, labels({2, 0})).item()));
}

TEST_CASE("nll_loss gradients") {
  Tensor y = labels({2, 0, 1});
  for (const char* reduction : {"mean", "sum", "none"}) {
    INFO(reduction);
    check_gradients(
        [y, reduction](const TensorList& a) { return nn::nll_loss(a[0], y, reduction); },
        {leaf({3, 3}, -2.0, 0.0, 9)});
  }
  Tensor yi = labels({2, -100, 1});
  check_gradients([yi](const TensorList& a) { return nn::nll_loss(log_softmax(a[0], 1), yi); },
                  {leaf({3, 3}, -2.0, 2.0, 10)});
}

TEST_CASE("nll_loss errors") {
  CHECK_THROWS_WITH_PARTS(nn::nll_loss(zeros({3}), labels({0})), ShapeError, "nll_loss", "[3]",
                          "[1]");
  CHECK_THROWS_WITH_PARTS(nn::nll_loss(zeros({2, 3}), labels({0, 1, 2})), ShapeError, "nll_loss",
                          "[2, 3]", "[3]");
  CHECK_THROWS_WITH_PARTS(nn::nll_loss(zeros({2, 3}), zeros({2})), DtypeError, "nll_loss",
                          "float32");
  CHECK_THROWS_WITH_PARTS(nn::nll_loss(zeros({2, 3}), labels({0, 5})), IndexError, "nll_loss", "5",
                          "[0, 3)");
  CHECK_THROWS_WITH_PARTS(nn::nll_loss(zeros({2, 3}), labels({0, 1}), "avg"), ValueError,
                          "nll_loss", "avg");
}

// ---- binary_cross_entropy_with_logits ----

TEST_CASE("binary_cross_entropy_with_logits: -(y log s(x) + (1 - y) log(1 - s(x)))") {
  std::vector<double> xs = {-2.0, 0.5, 3.0}, ys = {0.0, 1.0, 0.3};
  Tensor x = Tensor::from_vector(xs), y = Tensor::from_vector(ys);
  std::vector<double> expected;
  for (size_t i = 0; i < xs.size(); ++i) {
    double s = sigmoid_of(xs[i]);
    expected.push_back(-(ys[i] * std::log(s) + (1 - ys[i]) * std::log(1 - s)));
  }
  Tensor none = nn::binary_cross_entropy_with_logits(x, y, "none");
  for (size_t i = 0; i < xs.size(); ++i)
    CHECK(none.at({static_cast<int64_t>(i)}) == doctest::Approx(expected[i]));
  double total = expected[0] + expected[1] + expected[2];
  CHECK(nn::binary_cross_entropy_with_logits(x, y).item() == doctest::Approx(total / 3));
  CHECK(nn::binary_cross_entropy_with_logits(x, y, "sum").item() == doctest::Approx(total));
}

TEST_CASE("binary_cross_entropy_with_logits with pos_weight weighs the positive term") {
  // loss = -(p y log s(x) + (1 - y) log(1 - s(x))), p broadcast over the last axis.
  Tensor x = f64({{-2.0, 0.5, 3.0}, {1.0, -1.0, 0.0}});
  Tensor y = f64({{0.0, 1.0, 0.3}, {1.0, 1.0, 0.5}});
  std::vector<double> pw = {2.0, 0.5, 3.0};
  Tensor none = nn::binary_cross_entropy_with_logits(x, y, "none", Tensor::from_vector(pw));
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t c = 0; c < 3; ++c) {
      double xv = x.at({r, c}), yv = y.at({r, c}), s = sigmoid_of(xv);
      double expected = -(pw[c] * yv * std::log(s) + (1 - yv) * std::log(1 - s));
      CHECK(none.at({r, c}) == doctest::Approx(expected));
    }
  // pos_weight 1 is the unweighted loss.
  CHECK(test::allclose(nn::binary_cross_entropy_with_logits(x, y, "none", ones({3}, float64)),
                       nn::binary_cross_entropy_with_logits(x, y, "none"), 1e-12));
}

TEST_CASE("binary_cross_entropy_with_logits gradients (logits, targets and pos_weight)") {
  for (const char* reduction : {"mean", "sum", "none"}) {
    INFO(reduction);
    check_gradients(
        [reduction](const TensorList& a) {
          return nn::binary_cross_entropy_with_logits(a[0], a[1], reduction);
        },
        {leaf({2, 3}, -3.0, 3.0, 11), leaf({2, 3}, 0.0, 1.0, 12)});
  }
  check_gradients(
      [](const TensorList& a) {
        return nn::binary_cross_entropy_with_logits(a[0], a[1], "mean", a[2]);
      },
      {leaf({2, 3}, -3.0, 3.0, 13), leaf({2, 3}, 0.0, 1.0, 14), leaf({3}, 0.5, 3.0, 15)});
}

TEST_CASE("binary_cross_entropy_with_logits is finite for logits of +-1e4") {
  for (Dtype d : {float32, float64}) {
    Tensor x = Tensor({1e4, -1e4, 1e4, -1e4}).to(d).requires_grad_();
    Tensor y = Tensor({0.0, 1.0, 1.0, 0.0}).to(d);
    Tensor none = nn::binary_cross_entropy_with_logits(x, y, "none");
    CHECK(none.at({0}) == doctest::Approx(1e4));
    CHECK(none.at({1}) == doctest::Approx(1e4));
    CHECK(none.at({2}) == doctest::Approx(0.0));
    CHECK(none.at({3}) == doctest::Approx(0.0));
    Tensor loss = nn::binary_cross_entropy_with_logits(x, y, "mean", Tensor({3.0}).to(d));
    CHECK(all_finite(loss));
    loss.backward();
    CHECK(all_finite(x.grad()));
    // d/dx = (sigmoid(x) - y) / N without pos_weight; with it, -p y (1 - s) + (1 - y) s.
    CHECK(x.grad().at({0}) == doctest::Approx(0.25));
    CHECK(x.grad().at({1}) == doctest::Approx(-0.75));
  }
}

TEST_CASE("binary_cross_entropy_with_logits errors") {
  CHECK_THROWS_WITH_PARTS(nn::binary_cross_entropy_with_logits(zeros({3}), zeros({2, 3})),
                          ShapeError, "binary_cross_entropy_with_logits", "[2, 3]", "[3]");
  CHECK_THROWS_WITH_PARTS(nn::binary_cross_entropy_with_logits(zeros({3}), zeros({3}), "avg"),
                          ValueError, "binary_cross_entropy_with_logits", "avg");
}

TEST_CASE("reduce_loss applies a reduction by name") {
  Tensor l = Tensor({1.0, 2.0, 6.0});
  CHECK(nn::reduce_loss(l, "mean", "x").item() == doctest::Approx(3.0));
  CHECK(nn::reduce_loss(l, "sum", "x").item() == doctest::Approx(9.0));
  CHECK(nn::reduce_loss(l, "none", "x").same(l));
  CHECK_THROWS_WITH_PARTS(nn::reduce_loss(l, "max", "my_loss"), ValueError, "my_loss", "'max'",
                          "mean, sum or none");
}
