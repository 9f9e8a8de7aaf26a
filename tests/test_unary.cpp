// Unary ops: values against the C++ standard library (float64 and float32, SIMD-sized tensors with
// tails, strided views, sizes that take the multi-threaded path), special values, 0-d and empty
// tensors, dtypes, derivatives by hand at chosen points, first and second derivatives (float64
// gradcheck and gradgradcheck, contiguous and strided), clamp, and the errors.
#include <cmath>
#include <functional>
#include <limits>
#include <numbers>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::leaf;
using test::values;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

using UnaryOp = Tensor (*)(const Tensor&);
using StdFn = double (*)(double);

double d_neg(double v) { return -v; }
double d_exp(double v) { return std::exp(v); }
double d_log(double v) { return std::log(v); }
double d_log1p(double v) { return std::log1p(v); }
double d_expm1(double v) { return std::expm1(v); }
double d_sqrt(double v) { return std::sqrt(v); }
double d_rsqrt(double v) { return 1 / std::sqrt(v); }
double d_abs(double v) { return std::abs(v); }
double d_sign(double v) { return (v > 0) - (v < 0); }
double d_square(double v) { return v * v; }
double d_sin(double v) { return std::sin(v); }
double d_cos(double v) { return std::cos(v); }
double d_erf(double v) { return std::erf(v); }
double d_tanh(double v) { return std::tanh(v); }
double d_sigmoid(double v) { return 1 / (1 + std::exp(-v)); }
Tensor clamp_pm1(const Tensor& x) { return clamp(x, -1, 1); }
double d_clamp_pm1(double v) { return std::min(std::max(v, -1.0), 1.0); }

// Every op of unary.h with its standard-library counterpart and an input range inside its domain.
struct Case {
  const char* name;
  UnaryOp op;
  StdFn f;
  double lo, hi;
};
const Case kCases[] = {
    {"neg", neg, d_neg, -3, 3},
    {"exp", exp, d_exp, -20, 20},
    {"log", log, d_log, 1e-3, 50},
    {"log1p", log1p, d_log1p, -0.9, 10},
    {"expm1", expm1, d_expm1, -20, 20},
    {"sqrt", sqrt, d_sqrt, 0, 50},
    {"rsqrt", rsqrt, d_rsqrt, 0.01, 50},
    {"abs", abs, d_abs, -3, 3},
    {"sign", sign, d_sign, -3, 3},
    {"square", square, d_square, -3, 3},
    {"sin", sin, d_sin, -6, 6},
    {"cos", cos, d_cos, -6, 6},
    {"erf", erf, d_erf, -3, 3},
    {"tanh", tanh, d_tanh, -10, 10},
    {"sigmoid", sigmoid, d_sigmoid, -30, 30},
    {"clamp", clamp_pm1, d_clamp_pm1, -3, 3},
};

// Number of elements of op(x) that differ from f(x) by more than the tolerance (float64: a few
// ulps; float32: single precision against the double result of the rounded input).
int64_t mismatches(const Case& c, const Tensor& x) {
  Tensor y = c.op(x);
  REQUIRE(y.shape() == x.shape());
  REQUIRE(y.dtype() == x.dtype());
  const double tol = x.dtype() == float64 ? 1e-13 : 1e-6;
  auto got = y.to(float64).to_vector<double>(), xs = x.to(float64).to_vector<double>();
  int64_t bad = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    double want = c.f(xs[i]);
    if (!(std::abs(got[i] - want) <= tol * (std::abs(want) + (x.dtype() == float64 ? 0 : 1))))
      ++bad;
  }
  return bad;
}

}  // namespace

TEST_CASE("every unary op matches the standard library in float64 and float32") {
  for (const Case& c : kCases) {
    INFO(std::string(c.name));
    // 37 values: more than one SIMD register, and a tail.
    Tensor x = leaf({37}, c.lo, c.hi, 99).detach();
    CHECK(mismatches(c, x) == 0);
    CHECK(mismatches(c, x.to(float32)) == 0);
  }
}

TEST_CASE("strided views and large tensors give the same values") {
  for (const Case& c : kCases) {
    INFO(std::string(c.name));
    Tensor m = leaf({40, 33}, c.lo, c.hi, 7).detach();
    Tensor t = m.t();  // [33, 40], not contiguous
    REQUIRE_FALSE(t.is_contiguous());
    CHECK(mismatches(c, t) == 0);
    CHECK(mismatches(c, m.to(float32).t()) == 0);
    // exp and tanh run SIMD batches on dense rows and libm on strided ones: equal up to an ulp.
    CHECK(test::allclose(c.op(t), c.op(t.contiguous()), 0, 1e-15));
    Tensor every_third = slice(m, 1, 1, 33, 3);
    CHECK(mismatches(c, every_third) == 0);
    CHECK(test::allclose(c.op(every_third), c.op(every_third.contiguous()), 0, 1e-15));
    // A broadcast (stride-0) view.
    Tensor row = slice(m, 0, 0, 1).expand({5, 33});
    CHECK(mismatches(c, row) == 0);
    // 90000 elements: above the grain at which the kernels split work over threads.
    Tensor big = leaf({300, 300}, c.lo, c.hi, 11).detach();
    CHECK(mismatches(c, big) == 0);
    CHECK(mismatches(c, big.to(float32)) == 0);
  }
}

TEST_CASE("tensor methods are the free functions") {
  Tensor x = leaf({2, 3}, 0.1, 2, 3).detach();
  CHECK(test::allclose(x.exp(), exp(x), 0, 0));
  CHECK(test::allclose(x.log(), log(x), 0, 0));
  CHECK(test::allclose(x.sqrt(), sqrt(x), 0, 0));
  CHECK(test::allclose(x.abs(), abs(x), 0, 0));
  CHECK(test::allclose(x.tanh(), tanh(x), 0, 0));
  CHECK(test::allclose(x.sigmoid(), sigmoid(x), 0, 0));
}

TEST_CASE("special values: infinities, large arguments, zeros, NaN") {
  Tensor x = Tensor::from_vector(std::vector<double>{-kInf, -1000, 0, 1000, kInf});
  auto e = exp(x).to_vector<double>();
  CHECK(e[0] == 0);
  CHECK(e[1] == 0);
  CHECK(e[2] == 1);
  CHECK(std::isinf(e[3]));
  CHECK(std::isinf(e[4]));
  auto t = tanh(x).to_vector<double>();
  CHECK(t == std::vector<double>{-1, -1, 0, 1, 1});
  auto s = sigmoid(x).to_vector<double>();
  CHECK(s == std::vector<double>{0, 0, 0.5, 1, 1});
  auto r = erf(x).to_vector<double>();
  CHECK(r == std::vector<double>{-1, -1, 0, 1, 1});
  CHECK(std::isinf(log(zeros({1}, float64)).item()));
  CHECK(log(zeros({1}, float64)).item() < 0);
  CHECK(std::isnan(log(full({1}, -1.0, float64)).item()));
  CHECK(log1p(full({1}, -1.0, float64)).item() == -kInf);
  CHECK(std::isnan(sqrt(full({1}, -1.0, float64)).item()));
  CHECK(rsqrt(zeros({1}, float64)).item() == kInf);
  CHECK(sign(zeros({1}, float64)).item() == 0);
  CHECK(values(abs(Tensor::from_vector(std::vector<double>{-kInf, -0.0}))) ==
        std::vector<double>{kInf, 0});
  // float32 overflow and saturation.
  CHECK(std::isinf(exp(full({20}, 100.0)).to_vector<float>()[19]));
  CHECK(tanh(full({20}, 50.0)).to_vector<float>()[19] == 1.0f);
  // sigmoid of a large negative float32 stays finite and positive (no 0/0).
  auto sn = sigmoid(full({20}, -80.0)).to_vector<float>();
  CHECK(sn[0] >= 0);
  CHECK(sn[0] < 1e-30f);
  CHECK(sigmoid(full({1}, -800.0, float64)).item() == 0);
  // NaN goes through every op but sign (whose comparisons with 0 are false for NaN).
  for (const Case& c : kCases) {
    if (std::string(c.name) == "sign") continue;
    INFO(std::string(c.name));
    auto v = c.op(full({9}, kNaN, float64)).to_vector<double>();
    CHECK(std::isnan(v[0]));
    CHECK(std::isnan(v[8]));
  }
}

TEST_CASE("expm1 keeps every digit near 0, where exp(x) - 1 loses them") {
  Tensor x = Tensor::from_vector(std::vector<double>{1e-10, -1e-12, 1e-300});
  std::vector<double> y = expm1(x).to_vector<double>();
  CHECK(y[0] == doctest::Approx(1e-10 + 5e-21).epsilon(1e-15));
  CHECK(y[1] == doctest::Approx(-1e-12).epsilon(1e-15));
  CHECK(y[2] == 1e-300);
  // exp(1e-10) - 1 has only ~7 correct digits.
  CHECK(std::abs((exp(x) - 1.0).to_vector<double>()[0] - 1e-10) > 1e-20);
}

TEST_CASE("0-d and empty tensors keep their shapes") {
  for (const Case& c : kCases) {
    INFO(std::string(c.name));
    Tensor s = scalar_tensor(0.5, float64);
    Tensor y = c.op(s);
    CHECK(y.shape() == Shape{});
    CHECK(y.item() == doctest::Approx(c.f(0.5)).epsilon(1e-14));
    Tensor e = c.op(zeros({0, 3}, float64));
    CHECK(e.shape() == Shape{0, 3});
    CHECK(e.dtype() == float64);
  }
  Tensor x = scalar_tensor(2.0, float64).requires_grad_();
  exp(x).backward();
  CHECK(x.grad().shape() == Shape{});
  CHECK(x.grad().item() == doctest::Approx(std::exp(2.0)));
  Tensor z = zeros({0, 3}, float64).requires_grad_();
  tanh(z).sum().backward();
  CHECK(z.grad().shape() == Shape{0, 3});
}

TEST_CASE("dtypes: floats are kept; integers and bools are computed in float32") {
  for (const Case& c : kCases) {
    INFO(std::string(c.name));
    if (std::string(c.name) == "neg") continue;
    CHECK(c.op(Tensor({1.0, 2.0})).dtype() == float32);
    CHECK(c.op(Tensor::from_vector(std::vector<int64_t>{1, 2})).dtype() == float32);
  }
  Tensor i = Tensor::from_vector(std::vector<int64_t>{0, 1, 4});
  Tensor r = sqrt(i);
  CHECK(r.dtype() == float32);
  CHECK(r.to_vector<float>() == std::vector<float>{0, 1, 2});
  CHECK(square(i).to_vector<float>() == std::vector<float>{0, 1, 16});
  CHECK(clamp(Tensor::from_vector(std::vector<int64_t>{-3, 0, 3}), -1, 1).to_vector<float>() ==
        std::vector<float>{-1, 0, 1});
  // neg keeps int64 (negation is exact there).
  Tensor n = neg(Tensor::from_vector(std::vector<int64_t>{1, -2, 0}));
  CHECK(n.dtype() == int64);
  CHECK(n.to_vector<int64_t>() == std::vector<int64_t>{-1, 2, 0});
  CHECK(neg(Tensor({1.5})).dtype() == float32);
  // A bool mask is computed as float32 0 and 1, as in PyTorch.
  Tensor mask = gt(Tensor({1.0, -1.0}), zeros({}));
  Tensor e = exp(mask);
  CHECK(e.dtype() == float32);
  CHECK(e.to_vector<float>()[0] == doctest::Approx(std::exp(1.0f)));
  CHECK(e.to_vector<float>()[1] == 1.0f);
}

TEST_CASE("derivatives by hand at chosen points") {
  auto grad_at = [](Tensor (*op)(const Tensor&), std::vector<double> at) {
    Tensor x = Tensor::from_vector(at).requires_grad_();
    op(x).sum().backward();
    return x.grad().to_vector<double>();
  };
  using V = std::vector<double>;
  auto near = [](const V& got, const V& want) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]));
  };
  const double pi = std::numbers::pi;
  near(grad_at(neg, {2, -1}), {-1, -1});
  near(grad_at(exp, {0, 1}), {1, std::exp(1.0)});
  near(grad_at(log, {2, 0.5}), {0.5, 2});
  near(grad_at(log1p, {0, 1}), {1, 0.5});
  near(grad_at(expm1, {0, 1}), {1, std::exp(1.0)});
  near(grad_at(sqrt, {4, 0.25}), {0.25, 1});
  near(grad_at(rsqrt, {4, 1}), {-1.0 / 16, -0.5});
  near(grad_at(abs, {-2, 3, 0}), {-1, 1, 0});  // 0 at 0, as in PyTorch
  near(grad_at(square, {3, -0.5}), {6, -1});
  near(grad_at(sin, {0, pi / 2}), {1, 0});
  near(grad_at(cos, {0, pi / 2}), {0, -1});
  near(grad_at(erf, {0, 1}), {2 / std::sqrt(pi), 2 / std::sqrt(pi) * std::exp(-1.0)});
  near(grad_at(tanh, {0, 1}), {1, 1 - std::tanh(1.0) * std::tanh(1.0)});
  near(grad_at(sigmoid, {0, 2}), {0.25, d_sigmoid(2) * (1 - d_sigmoid(2))});
  // sqrt has an infinite slope at 0.
  CHECK(std::isinf(grad_at(sqrt, {0})[0]));
  // float32 inputs get float32 gradients.
  Tensor f = Tensor({0.0, 1.0}).requires_grad_();
  exp(f).sum().backward();
  CHECK(f.grad().dtype() == float32);
  CHECK(f.grad().to_vector<float>()[1] == doctest::Approx(std::exp(1.0f)));
}

TEST_CASE("derivatives: first and second order in float64") {
  auto check = [](const char* name, UnaryOp f, double lo, double hi) {
    INFO(name);
    check_gradients([f](const TensorList& v) { return f(v[0]); }, {leaf({2, 3}, lo, hi, 7)});
    // A transposed view as input, and a 0-d input.
    check_gradients([f](const TensorList& v) { return f(v[0].t()); }, {leaf({3, 2}, lo, hi, 8)});
    check_gradients([f](const TensorList& v) { return f(v[0]); }, {leaf({}, lo, hi, 9)});
  };
  check("neg", neg, -2, 2);
  check("exp", exp, -2, 2);
  check("log", log, 0.5, 3);
  check("log1p", log1p, -0.5, 3);
  check("expm1", expm1, -2, 2);
  check("sqrt", sqrt, 0.5, 3);
  check("rsqrt", rsqrt, 0.5, 3);
  check("abs", abs, 0.2, 2);
  check("abs (negative side)", abs, -2, -0.2);
  check("square", square, -2, 2);
  check("sin", sin, -3, 3);
  check("cos", cos, -3, 3);
  check("erf", erf, -2, 2);
  check("tanh", tanh, -2, 2);
  check("sigmoid", sigmoid, -3, 3);
  check(
      "clamp (inside)", [](const Tensor& x) { return clamp(x, -5, 5); }, -2, 2);
  check(
      "clamp (below)", [](const Tensor& x) { return clamp(x, 3, 5); }, -2, 2);
  check(
      "clamp (above)", [](const Tensor& x) { return clamp(x, -5, -3); }, -2, 2);
  // Broadcast through a unary op: exp(a) * b with a [3, 1] and b [1, 4].
  check_gradients([](const TensorList& v) { return mul(exp(v[0]), tanh(v[1])); },
                  {leaf({3, 1}, -1, 1, 10), leaf({1, 4}, -1, 1, 11)});
  // A chain of them.
  check_gradients([](const TensorList& v) { return sigmoid(sin(sqrt(log1p(square(v[0]))))); },
                  {leaf({2, 3}, 0.3, 2, 12)});
  // sign is piecewise constant: no graph, zero gradient.
  Tensor x = leaf({3}, -1, 1, 8);
  CHECK(sign(x).grad_fn() == nullptr);
  CHECK_FALSE(sign(x).requires_grad());
  // With grad mode off or an input that does not require grad, nothing is recorded.
  CHECK(exp(x.detach()).grad_fn() == nullptr);
  {
    NoGradGuard no_grad;
    CHECK(tanh(x).grad_fn() == nullptr);
  }
  CHECK(tanh(x).grad_fn() != nullptr);
}

TEST_CASE("clamp bounds the values; its gradient is 1 inside and on the bounds, 0 outside") {
  Tensor x = Tensor::from_vector(std::vector<double>{-2, -0.5, 0.5, 2}).requires_grad_();
  Tensor y = clamp(x, -1, 1);
  CHECK(y.to_vector<double>() == std::vector<double>{-1, -0.5, 0.5, 1});
  y.sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 1, 1, 0});
  // On the bounds the gradient is 1 (lo <= x <= hi).
  Tensor b = Tensor::from_vector(std::vector<double>{-1, 1}).requires_grad_();
  clamp(b, -1, 1).sum().backward();
  CHECK(b.grad().to_vector<double>() == std::vector<double>{1, 1});
  // One-sided clamps.
  Tensor v = Tensor::from_vector(std::vector<double>{-5, 0, 5});
  CHECK(clamp(v, 0).to_vector<double>() == std::vector<double>{0, 0, 5});
  CHECK(clamp(v, -kInf, 1).to_vector<double>() == std::vector<double>{-5, 0, 1});
  CHECK(clamp(v).to_vector<double>() == std::vector<double>{-5, 0, 5});
  // lo == hi: a constant.
  CHECK(clamp(v, 2, 2).to_vector<double>() == std::vector<double>{2, 2, 2});
  // float32 stays float32.
  Tensor f = clamp(Tensor({-3.0, 0.25, 3.0}), -1, 1);
  CHECK(f.dtype() == float32);
  CHECK(f.to_vector<float>() == std::vector<float>{-1, 0.25f, 1});
  // Away from the bounds, first and second derivatives on both sides.
  Tensor mixed = Tensor::from_vector(std::vector<double>{-1.7, -0.9, -0.2, 0.3, 0.8, 1.6}, {2, 3})
                     .requires_grad_();
  check_gradients([](const TensorList& in) { return clamp(in[0], -0.5, 0.5); }, {mixed});
  // The in-place form.
  Tensor z = Tensor::from_vector(std::vector<double>{1, 2, 3});
  CHECK(z.clamp_(1.5, 2.5).to_vector<double>() == std::vector<double>{1.5, 2, 2.5});
  CHECK(z.to_vector<double>() == std::vector<double>{1.5, 2, 2.5});
}

TEST_CASE("bad input: clamp with crossed bounds") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2});
  CHECK_THROWS_WITH_PARTS(clamp(x, 2, 1), ValueError, "clamp", "2", "1");
  CHECK_THROWS_WITH_PARTS(clamp(x, 0.5, -0.5), ValueError, "clamp", "0.5", "-0.5");
  CHECK_THROWS_WITH_PARTS(clamp(x, kInf, 0), ValueError, "clamp", "inf");
}
