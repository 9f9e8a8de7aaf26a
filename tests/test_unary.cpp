// Unary ops: values against the C++ standard library (float64 and float32, SIMD-sized tensors with
// tails), special values, first and second derivatives (float64 gradcheck and gradgradcheck), and
// the errors.
#include <cmath>
#include <functional>
#include <limits>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::leaf;

namespace {

const double inf = std::numeric_limits<double>::infinity();

// Compares op(x) with f applied to each element, for x of 37 values in [lo, hi] (more than one SIMD
// register and a tail), in float64 and float32.
void check_against_std(const char* name, Tensor (*op)(const Tensor&), double (*f)(double),
                       double lo, double hi) {
  INFO(name);
  Tensor x = leaf({37}, lo, hi, 99).detach();
  auto got = op(x).to_vector<double>();
  auto xs = x.to_vector<double>();
  for (size_t i = 0; i < xs.size(); ++i) CHECK(got[i] == doctest::Approx(f(xs[i])).epsilon(1e-13));
  Tensor x32 = x.to(float32);
  auto got32 = op(x32);
  CHECK(got32.dtype() == float32);
  auto g32 = got32.to(float64).to_vector<double>();
  auto xs32 = x32.to(float64).to_vector<double>();
  for (size_t i = 0; i < xs32.size(); ++i)
    CHECK(g32[i] == doctest::Approx(f(xs32[i])).epsilon(1e-6).scale(1e-6));
}

double d_neg(double v) { return -v; }
double d_rsqrt(double v) { return 1 / std::sqrt(v); }
double d_sigmoid(double v) { return 1 / (1 + std::exp(-v)); }
double d_sign(double v) { return (v > 0) - (v < 0); }
double d_square(double v) { return v * v; }

}  // namespace

TEST_CASE("every unary op matches the standard library in float64 and float32") {
  check_against_std("neg", neg, d_neg, -3, 3);
  check_against_std(
      "exp", exp, [](double v) { return std::exp(v); }, -20, 20);
  check_against_std(
      "log", log, [](double v) { return std::log(v); }, 1e-3, 50);
  check_against_std(
      "log1p", log1p, [](double v) { return std::log1p(v); }, -0.9, 10);
  check_against_std(
      "sqrt", sqrt, [](double v) { return std::sqrt(v); }, 0, 50);
  check_against_std("rsqrt", rsqrt, d_rsqrt, 0.01, 50);
  check_against_std(
      "abs", abs, [](double v) { return std::abs(v); }, -3, 3);
  check_against_std("sign", sign, d_sign, -3, 3);
  check_against_std("square", square, d_square, -3, 3);
  check_against_std(
      "sin", sin, [](double v) { return std::sin(v); }, -6, 6);
  check_against_std(
      "cos", cos, [](double v) { return std::cos(v); }, -6, 6);
  check_against_std(
      "erf", erf, [](double v) { return std::erf(v); }, -3, 3);
  check_against_std(
      "tanh", tanh, [](double v) { return std::tanh(v); }, -10, 10);
  check_against_std("sigmoid", sigmoid, d_sigmoid, -30, 30);
}

TEST_CASE("special values: infinities, large arguments, zeros") {
  Tensor x = Tensor::from_vector(std::vector<double>{-inf, -1000, 0, 1000, inf});
  auto e = exp(x).to_vector<double>();
  CHECK(e[0] == 0);
  CHECK(e[1] == 0);
  CHECK(e[2] == 1);
  CHECK(std::isinf(e[3]));
  auto t = tanh(x).to_vector<double>();
  CHECK(t == std::vector<double>{-1, -1, 0, 1, 1});
  auto s = sigmoid(x).to_vector<double>();
  CHECK(s == std::vector<double>{0, 0, 0.5, 1, 1});
  CHECK(std::isinf(log(zeros({1}, float64)).item()));
  CHECK(std::isnan(sqrt(full({1}, -1.0, float64)).item()));
  CHECK(sign(zeros({1}, float64)).item() == 0);
  // sigmoid of a large negative float32 stays finite and positive (no 0/0).
  CHECK(sigmoid(full({20}, -80.0)).to_vector<float>()[0] >= 0);
}

TEST_CASE("clamp bounds the values; its gradient is 1 inside and 0 outside") {
  Tensor x = Tensor::from_vector(std::vector<double>{-2, -0.5, 0.5, 2}).requires_grad_();
  Tensor y = clamp(x, -1, 1);
  CHECK(y.to_vector<double>() == std::vector<double>{-1, -0.5, 0.5, 1});
  y.sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 1, 1, 0});
  CHECK(clamp(Tensor::from_vector(std::vector<double>{-5, 5}), 0).to_vector<double>() ==
        std::vector<double>{0, 5});
  Tensor z = Tensor::from_vector(std::vector<double>{1, 2, 3});
  CHECK(z.clamp_(1.5, 2.5).to_vector<double>() == std::vector<double>{1.5, 2, 2.5});
  CHECK_THROWS_WITH_PARTS(clamp(x, 2, 1), ValueError, "clamp", "2", "1");
}

TEST_CASE("integer input to a floating op is computed in float32") {
  Tensor i = Tensor::from_vector(std::vector<int64_t>{0, 1, 4});
  Tensor r = sqrt(i);
  CHECK(r.dtype() == float32);
  CHECK(r.to_vector<float>() == std::vector<float>{0, 1, 2});
}

TEST_CASE("derivatives: first and second order in float64") {
  auto check = [](const char* name, std::function<Tensor(const Tensor&)> f, double lo, double hi) {
    INFO(name);
    check_gradients([f](const TensorList& v) { return f(v[0]); }, {leaf({2, 3}, lo, hi, 7)});
  };
  check(
      "neg", [](const Tensor& x) { return neg(x); }, -2, 2);
  check(
      "exp", [](const Tensor& x) { return exp(x); }, -2, 2);
  check(
      "log", [](const Tensor& x) { return log(x); }, 0.5, 3);
  check(
      "log1p", [](const Tensor& x) { return log1p(x); }, -0.5, 3);
  check(
      "sqrt", [](const Tensor& x) { return sqrt(x); }, 0.5, 3);
  check(
      "rsqrt", [](const Tensor& x) { return rsqrt(x); }, 0.5, 3);
  check(
      "abs", [](const Tensor& x) { return abs(x); }, 0.2, 2);
  check(
      "abs (negative side)", [](const Tensor& x) { return abs(x); }, -2, -0.2);
  check(
      "square", [](const Tensor& x) { return square(x); }, -2, 2);
  check(
      "sin", [](const Tensor& x) { return sin(x); }, -3, 3);
  check(
      "cos", [](const Tensor& x) { return cos(x); }, -3, 3);
  check(
      "erf", [](const Tensor& x) { return erf(x); }, -2, 2);
  check(
      "tanh", [](const Tensor& x) { return tanh(x); }, -2, 2);
  check(
      "sigmoid", [](const Tensor& x) { return sigmoid(x); }, -3, 3);
  check(
      "clamp (inside)", [](const Tensor& x) { return clamp(x, -5, 5); }, -2, 2);
  // sign is piecewise constant: no graph, zero gradient.
  Tensor x = leaf({3}, -1, 1, 8);
  CHECK(sign(x).grad_fn() == nullptr);
}

TEST_CASE("a bool mask is computed as float32 0 and 1, as in PyTorch") {
  Tensor mask = gt(Tensor({1.0, -1.0}), zeros({}));
  Tensor e = exp(mask);
  CHECK(e.dtype() == float32);
  CHECK(e.to_vector<float>()[0] == doctest::Approx(std::exp(1.0f)));
  CHECK(e.to_vector<float>()[1] == 1.0f);
}
