// Binary elementwise ops: values against hand computations, NumPy broadcasting (one side, both
// sides, 0-d, empty, and every kernel pattern against a reference written here), strided inputs,
// dtype promotion, the C++ operators, comparisons and masks, NaN, where / masked_fill, first and
// second derivatives (float64 gradcheck and gradgradcheck, plain, broadcast and strided shapes),
// gradients by hand (ties, pow at zero), and the errors.
#include <cmath>
#include <functional>
#include <limits>
#include <utility>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::check_values;
using test::f64;
using test::leaf;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

using BinaryFn = std::function<Tensor(const Tensor&, const Tensor&)>;

Tensor i64(std::vector<int64_t> v) { return Tensor::from_vector(v); }

std::vector<bool> mask_values(const Tensor& m) {
  REQUIRE(m.dtype() == boolean);
  std::vector<bool> r;
  Tensor c = m.contiguous();
  for (int64_t i = 0; i < c.numel(); ++i) r.push_back(c.data<bool>()[i]);
  return r;
}

bool all_nan(const Tensor& t) {
  for (double v : t.to(float64).to_vector<double>())
    if (!std::isnan(v)) return false;
  return true;
}

// A leaf with no entry near zero (for division, pow and log-based derivatives).
Tensor positive_leaf(const Shape& s, uint64_t seed) { return leaf(s, 0.5, 2.0, seed); }

// NumPy broadcasting written independently of the library: the result shape of a and b and
// f(a[ia], b[ib]) for each of its elements in row-major order.
struct Reference {
  Shape shape;
  std::vector<double> values;
};
template <class F>
Reference reference(const Tensor& a, const Tensor& b, F f) {
  const Shape sa = a.shape(), sb = b.shape();
  const int64_t n = std::max(sa.size(), sb.size());
  // Size of `s` along output axis i (1 where s has no such axis).
  auto size_at = [n](const Shape& s, int64_t i) {
    int64_t k = i - (n - s.size());
    return k < 0 ? int64_t{1} : s[k];
  };
  Reference r;
  for (int64_t i = 0; i < n; ++i) r.shape.push_back(std::max(size_at(sa, i), size_at(sb, i)));
  auto va = a.to(float64).to_vector<double>(), vb = b.to(float64).to_vector<double>();
  std::vector<int64_t> idx(static_cast<size_t>(n), 0);
  for (int64_t flat = 0; flat < r.shape.numel(); ++flat) {
    int64_t rem = flat;
    for (int64_t i = n - 1; i >= 0; --i) {
      idx[i] = rem % r.shape[i];
      rem /= r.shape[i];
    }
    int64_t ia = 0, ib = 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t da = size_at(sa, i), db = size_at(sb, i);
      ia = ia * da + (da == 1 ? 0 : idx[i]);
      ib = ib * db + (db == 1 ? 0 : idx[i]);
    }
    r.values.push_back(f(va[ia], vb[ib]));
  }
  return r;
}

}  // namespace

TEST_CASE("add, sub, mul, div: values, alpha, and the operators with scalars on either side") {
  Tensor a = f64({1, 2, 3}), b = f64({4, 5, 6});
  check_values(add(a, b), {5, 7, 9});
  check_values(add(a, b, 2.0), {9, 12, 15});
  check_values(sub(a, b), {-3, -3, -3});
  check_values(sub(a, b, 0.5), {-1, -0.5, 0});
  check_values(mul(a, b), {4, 10, 18});
  check_values(div(a, b), {0.25, 0.4, 0.5});
  check_values(a + b, {5, 7, 9});
  check_values(a - b, {-3, -3, -3});
  check_values(a * b, {4, 10, 18});
  check_values(b / a, {4, 2.5, 2});
  check_values(-a, {-1, -2, -3});
  check_values(a + 1.0, {2, 3, 4});
  check_values(1.0 + a, {2, 3, 4});
  check_values(a - 1.0, {0, 1, 2});
  check_values(1.0 - a, {0, -1, -2});
  check_values(a * 2.0, {2, 4, 6});
  check_values(2.0 * a, {2, 4, 6});
  check_values(a / 2.0, {0.5, 1, 1.5});
  check_values(a / 10.0, {0.1, 0.2, 0.3});
  check_values(6.0 / a, {6, 3, 2});
  check_values(add(a, 0.5), {1.5, 2.5, 3.5});
  check_values(mul(a, -3.0), {-3, -6, -9});
  check_values(rsub(a, 10.0), {9, 8, 7});
  check_values(rdiv(a, 3.0), {3, 1.5, 1});
  CHECK(div(f64({1, -1, 0}), f64({0, 0, 2})).to_vector<double>() ==
        std::vector<double>{kInf, -kInf, 0});
  // Scalar ops keep the tensor's dtype; float32 stays float32.
  CHECK((Tensor({1.0, 2.0}) * 3.0).dtype() == float32);
  CHECK((3.0 - Tensor({1.0, 2.0})).dtype() == float32);
  CHECK((a * 3.0).dtype() == float64);
  CHECK((-Tensor({1.0})).dtype() == float32);
  // Inputs are not modified.
  check_values(a, {1, 2, 3});
  check_values(b, {4, 5, 6});
}

TEST_CASE("broadcasting: one side, both sides, leading axes, 0-d and empty tensors") {
  Tensor col = f64({1, 2, 3}, {3, 1}), row = f64({10, 20, 30, 40}, {1, 4});
  Tensor s = add(col, row);
  CHECK(s.shape() == Shape{3, 4});
  check_values(s, {11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43});
  check_values(sub(row, col), {9, 19, 29, 39, 8, 18, 28, 38, 7, 17, 27, 37});
  Tensor m = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  check_values(mul(m, f64({1, 10, 100})), {1, 20, 300, 4, 50, 600});
  check_values(div(m, f64({1, 2}, {2, 1})), {1, 2, 3, 2, 2.5, 3});
  Tensor three = leaf({2, 1, 3}).detach();
  CHECK(add(three, leaf({4, 1}).detach()).shape() == Shape{2, 4, 3});
  Tensor zero_d = scalar_tensor(2.0, float64);
  CHECK(mul(zero_d, zero_d).shape() == Shape{});
  CHECK(mul(zero_d, zero_d).item() == 4.0);
  check_values(sub(m, zero_d), {-1, 0, 1, 2, 3, 4});
  check_values(sub(zero_d, m), {1, 0, -1, -2, -3, -4});
  check_values(pow(zero_d, f64({0, 1, 3})), {1, 2, 8});
  Tensor empty = zeros({0, 3}, float64);
  CHECK(add(empty, f64({1, 2, 3})).shape() == Shape{0, 3});
  CHECK(add(zeros({0, 1}), zeros({1, 5})).shape() == Shape{0, 5});
  CHECK(mul(zeros({0}), zeros({1})).shape() == Shape{0});
  CHECK(mul(zeros({0}), scalar_tensor(3.0)).numel() == 0);
  CHECK(gt(empty, zeros({3}, float64)).shape() == Shape{0, 3});
  CHECK(where(gt(empty, zeros({})), empty, zeros({})).shape() == Shape{0, 3});
}

TEST_CASE("every broadcast pattern and the multi-threaded path agree with a reference") {
  const std::vector<std::pair<Shape, Shape>> patterns = {
      {{37, 41}, {37, 41}}, {{37, 41}, {41}},          {{41}, {37, 41}},    {{37, 41}, {37, 1}},
      {{37, 1}, {37, 41}},  {{37, 1}, {1, 41}},        {{}, {37, 41}},      {{37, 41}, {}},
      {{2, 1, 41}, {3, 1}}, {{5, 1, 7, 1}, {3, 1, 9}}, {{300, 257}, {257}}, {{300, 1}, {1, 257}},
      {{1}, {300, 257}}};
  struct Op {
    const char* name;
    BinaryFn f;
    std::function<double(double, double)> ref;
  };
  const std::vector<Op> ops = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); },
       [](double x, double y) { return x + y; }},
      {"sub alpha", [](const Tensor& a, const Tensor& b) { return sub(a, b, 0.5); },
       [](double x, double y) { return x - 0.5 * y; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); },
       [](double x, double y) { return x * y; }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); },
       [](double x, double y) { return x / y; }},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); },
       [](double x, double y) { return std::pow(x, y); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
       [](double x, double y) { return std::min(x, y); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       [](double x, double y) { return std::max(x, y); }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b).to(float64); },
       [](double x, double y) { return x > y ? 1.0 : 0.0; }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b).to(float64); },
       [](double x, double y) { return x <= y ? 1.0 : 0.0; }},
      {"where(a > b, a, b)", [](const Tensor& a, const Tensor& b) { return where(gt(a, b), a, b); },
       [](double x, double y) { return x > y ? x : y; }},
  };
  uint64_t seed = 100;
  for (const auto& [sa, sb] : patterns) {
    // Positive values so that pow is defined; a and b overlap so comparisons go both ways.
    Tensor a = positive_leaf(sa, seed++).detach(), b = positive_leaf(sb, seed++).detach();
    for (const Op& op : ops) {
      INFO(op.name << " " << to_string(sa) << " with " << to_string(sb));
      Reference r = reference(a, b, op.ref);
      Tensor got = op.f(a, b);
      REQUIRE(got.shape() == r.shape);
      auto v = got.to_vector<double>();
      int64_t bad = 0;
      for (size_t i = 0; i < v.size(); ++i)
        if (!(std::abs(v[i] - r.values[i]) <= 1e-15 * (1 + std::abs(r.values[i])))) ++bad;
      CHECK(bad == 0);
    }
    // float32 takes the same paths with 4-byte elements.
    Tensor a32 = a.to(float32), b32 = b.to(float32);
    INFO("float32 " << to_string(sa) << " with " << to_string(sb));
    Reference r = reference(a32, b32, [](double x, double y) { return x * y - y; });
    Tensor got = sub(mul(a32, b32), b32);
    CHECK(got.dtype() == float32);
    CHECK(test::allclose(got, f64(r.values, r.shape), 1e-6, 1e-6));
  }
}

TEST_CASE("strided inputs (transposes, slices, expanded views) give the contiguous results") {
  Tensor a = positive_leaf({4, 5}, 3).detach(), b = positive_leaf({5, 4}, 4).detach();
  Tensor at = a.t();
  REQUIRE_FALSE(at.is_contiguous());
  const std::vector<std::pair<const char*, BinaryFn>> ops = {
      {"add", [](const Tensor& x, const Tensor& y) { return add(x, y, 2.0); }},
      {"sub", [](const Tensor& x, const Tensor& y) { return sub(x, y); }},
      {"mul", [](const Tensor& x, const Tensor& y) { return mul(x, y); }},
      {"div", [](const Tensor& x, const Tensor& y) { return div(x, y); }},
      {"pow", [](const Tensor& x, const Tensor& y) { return pow(x, y); }},
      {"minimum", [](const Tensor& x, const Tensor& y) { return minimum(x, y); }},
      {"maximum", [](const Tensor& x, const Tensor& y) { return maximum(x, y); }},
      {"lt", [](const Tensor& x, const Tensor& y) { return lt(x, y).to(float64); }},
      {"ge", [](const Tensor& x, const Tensor& y) { return ge(x, y).to(float64); }},
      {"ne", [](const Tensor& x, const Tensor& y) { return ne(x, y).to(float64); }},
  };
  for (const auto& [name, f] : ops) {
    INFO(name);
    CHECK(test::allclose(f(at, b), f(at.contiguous(), b), 0, 0));
    CHECK(test::allclose(f(b, at), f(b, at.contiguous()), 0, 0));
    CHECK(test::allclose(f(at, at), f(at.contiguous(), at.contiguous()), 0, 0));
  }
  Tensor every_other = slice(a, 1, 0, 5, 2);
  CHECK(test::allclose(add(every_other, every_other), mul(every_other.contiguous(), 2.0), 0, 0));
  Tensor row = slice(a, 0, 1, 2);
  CHECK(test::allclose(sub(a, row.expand({4, 5})), sub(a, row), 0, 0));
  // Scalar forms on views.
  CHECK(test::allclose(mul(at, 3.0), mul(at.contiguous(), 3.0), 0, 0));
  CHECK(test::allclose(add(every_other, 1.5), add(every_other.contiguous(), 1.5), 0, 0));
  CHECK(test::allclose(rdiv(at, 2.0), rdiv(at.contiguous(), 2.0), 0, 0));
  CHECK(test::allclose(rsub(at, 2.0), rsub(at.contiguous(), 2.0), 0, 0));
  CHECK(test::allclose(pow(at, 3.0), pow(at.contiguous(), 3.0), 0, 0));
  CHECK(test::allclose(pow(2.0, at), pow(2.0, at.contiguous()), 0, 0));
  // A transposed mask in where and masked_fill.
  Tensor mask_t = gt(b, scalar_tensor(1.2, float64)).t();  // [4, 5], not contiguous
  REQUIRE_FALSE(mask_t.is_contiguous());
  Tensor bt = b.t();
  Tensor w = where(mask_t, a, bt);
  CHECK(test::allclose(w, where(mask_t.contiguous(), a, bt.contiguous()), 0, 0));
  int64_t bad = 0;
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 5; ++j)
      bad += w.at({i, j}) != (b.at({j, i}) > 1.2 ? a.at({i, j}) : b.at({j, i}));
  CHECK(bad == 0);
  CHECK(test::allclose(masked_fill(a, mask_t, -1.0), masked_fill(a, mask_t.contiguous(), -1.0), 0,
                       0));
  CHECK(mask_values(logical_and(mask_t, logical_not(mask_t))) == std::vector<bool>(20, false));
}

TEST_CASE("dtype promotion: float32 with float64, int64 and bool arithmetic") {
  Tensor f = Tensor({1.0, 2.0}), d = f64({0.5, 0.25});
  CHECK(f.dtype() == float32);
  CHECK(add(f, d).dtype() == float64);
  CHECK(mul(d, f).dtype() == float64);
  CHECK(div(f, d).dtype() == float64);
  CHECK(pow(f, d).dtype() == float64);
  CHECK(maximum(f, d).dtype() == float64);
  CHECK(where(gt(d, zeros({})), f, d).dtype() == float64);
  check_values(add(f, d), {1.5, 2.25});
  check_values(maximum(f, d), {1, 2});
  // float32 0.1 widened to float64 is not float64 0.1: comparisons run in the promoted dtype.
  CHECK(mask_values(eq(Tensor({0.1}), f64({0.1}))) == std::vector<bool>{false});
  // A scalar compared with a float tensor takes the tensor's dtype (as in PyTorch).
  CHECK(mask_values(Tensor({0.1}) <= 0.1) == std::vector<bool>{true});
  CHECK(mask_values(Tensor({0.1}) > 0.1) == std::vector<bool>{false});
  // int64 stays int64 for +, -, *, min, max; division and pow are floating (float32).
  Tensor i = i64({1, 2}), j = i64({2, 2});
  CHECK(add(i, i).dtype() == int64);
  check_values(add(i, i), {2, 4});
  CHECK(sub(i, j).dtype() == int64);
  check_values(sub(i, j, 3.0), {-5, -4});
  check_values(add(i, j, -2.0), {-3, -2});
  CHECK(mul(i, j).dtype() == int64);
  CHECK(maximum(i, j).dtype() == int64);
  check_values(minimum(i, j), {1, 2});
  CHECK(div(i, j).dtype() == float32);
  check_values(div(i, j), {0.5, 1});
  CHECK(pow(i, j).dtype() == float32);
  check_values(pow(i, j), {1, 4});
  CHECK(add(i, f).dtype() == float32);
  CHECK(add(i, d).dtype() == float64);
  CHECK((i * 2.5).dtype() == float32);
  check_values(i * 2.5, {2.5, 5});
  CHECK(mask_values(i < 1.5) == std::vector<bool>{true, false});
  CHECK(mask_values(i >= 2.0) == std::vector<bool>{false, true});
  // bool + bool counts (int64), as in NumPy's sum of masks.
  Tensor p = gt(f64({1, -1}), zeros({}));
  CHECK(add(p, p).dtype() == int64);
  check_values(add(p, p), {2, 0});
  check_values(mul(p, f64({3, 4})), {3, 0});
}

TEST_CASE("a non-whole alpha with int64 inputs is refused instead of truncated") {
  Tensor i = i64({1, 2});
  CHECK_THROWS_WITH_PARTS(add(i, i, 0.5), ValueError, "add", "0.5", "int64", "[2]");
  CHECK_THROWS_WITH_PARTS(sub(i, i, 1.5), ValueError, "sub", "1.5", "int64", "[2]");
  // A floating side makes the result floating, where any alpha is fine.
  check_values(add(i, f64({1, 1}), 0.5), {1.5, 2.5});
}

TEST_CASE("gradients with mixed dtypes come back in each input's dtype") {
  Tensor f = Tensor({1.0, 2.0}).requires_grad_();
  Tensor d = f64({3, 4}).requires_grad_();
  Tensor y = mul(f, d);
  CHECK(y.dtype() == float64);
  y.sum().backward();
  CHECK(f.grad().dtype() == float32);
  CHECK(d.grad().dtype() == float64);
  check_values(f.grad(), {3, 4});
  check_values(d.grad(), {1, 2});
}

TEST_CASE("pow: tensor^scalar, tensor^tensor, scalar^tensor") {
  Tensor a = f64({1, 2, 3});
  check_values(pow(a, 2.0), {1, 4, 9});
  check_values(pow(a, 0.5), {1, std::sqrt(2.0), std::sqrt(3.0)});
  check_values(pow(a, 0.0), {1, 1, 1});
  check_values(pow(a, 1.0), {1, 2, 3});
  check_values(pow(f64({-2, 2}), 3.0), {-8, 8});
  check_values(pow(a, f64({3, 2, 1})), {1, 4, 3});
  check_values(pow(2.0, a), {2, 4, 8});
  check_values(pow(0.5, a), {0.5, 0.25, 0.125});
  check_values(a.pow(-1.0), {1, 0.5, 1.0 / 3});
  CHECK(std::isnan(pow(f64({-2}), 0.5).item()));
  // Broadcast exponent.
  check_values(pow(f64({2, 3}, {2, 1}), f64({1, 2}, {1, 2})), {2, 4, 3, 9});
}

TEST_CASE("gradients by hand: arithmetic, broadcasting sums, pow including at zero") {
  SUBCASE("add / sub with alpha, mul, div") {
    Tensor a = f64({1, 2}).requires_grad_(), b = f64({4, 5}).requires_grad_();
    (sub(a, b, 3.0) + add(a, b, 0.5)).sum().backward();
    check_values(a.grad(), {2, 2});
    check_values(b.grad(), {-2.5, -2.5});
    Tensor p = f64({1, 2}).requires_grad_(), q = f64({4, 5}).requires_grad_();
    div(p, q).sum().backward();
    check_values(p.grad(), {0.25, 0.2});
    check_values(q.grad(), {-1.0 / 16, -2.0 / 25});
    Tensor x = f64({1, 2}).requires_grad_();
    (rdiv(x, 3.0) + rsub(x, 7.0) + mul(x, 5.0) + (x - 1.0) + (x / 4.0)).sum().backward();
    // -3/x^2 - 1 + 5 + 1 + 1/4
    check_values(x.grad(), {-3 + 5.25, -0.75 + 5.25});
  }
  SUBCASE("broadcast gradients are summed back to each input's shape") {
    Tensor col = f64({1, 2, 3}, {3, 1}).requires_grad_();
    Tensor row = f64({10, 20, 30, 40}, {1, 4}).requires_grad_();
    mul(col, row).sum().backward();
    CHECK(col.grad().shape() == Shape{3, 1});
    CHECK(row.grad().shape() == Shape{1, 4});
    check_values(col.grad(), {100, 100, 100});
    check_values(row.grad(), {6, 6, 6, 6});
    Tensor s = scalar_tensor(2.0, float64).requires_grad_();
    Tensor m = f64({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
    (s * m).sum().backward();
    CHECK(s.grad().shape() == Shape{});
    CHECK(s.grad().item() == 21);
    check_values(m.grad(), {2, 2, 2, 2, 2, 2});
  }
  SUBCASE("empty inputs give empty and zero gradients") {
    Tensor e = zeros({0, 3}, float64).requires_grad_();
    Tensor w = f64({1, 2, 3}).requires_grad_();
    mul(e, w).sum().backward();
    CHECK(e.grad().shape() == Shape{0, 3});
    check_values(w.grad(), {0, 0, 0});
  }
  SUBCASE("pow with a tensor exponent") {
    Tensor a = f64({2, 3}).requires_grad_(), b = f64({3, 2}).requires_grad_();
    pow(a, b).sum().backward();
    check_values(a.grad(), {12, 6});                                 // b a^(b-1)
    check_values(b.grad(), {8 * std::log(2.0), 9 * std::log(3.0)});  // a^b ln a
  }
  SUBCASE("pow at zero: 0^b and a^0 are constant there, so their derivatives are 0, not NaN") {
    Tensor a = f64({0, 0, 2}).requires_grad_(), b = f64({2, 0, 0}).requires_grad_();
    Tensor y = pow(a, b);
    check_values(y, {0, 1, 1});
    y.sum().backward();
    check_values(a.grad(), {0, 0, 0});
    check_values(b.grad(), {0, 0, std::log(2.0)});
    Tensor x = f64({0, 2}).requires_grad_();
    pow(x, 0.0).sum().backward();
    check_values(x.grad(), {0, 0});
    Tensor x1 = f64({0, 2}).requires_grad_();
    pow(x1, 1.0).sum().backward();
    check_values(x1.grad(), {1, 1});
    Tensor x2 = f64({0, -3}).requires_grad_();
    pow(x2, 2.0).sum().backward();
    check_values(x2.grad(), {0, -6});
    Tensor x3 = f64({0, -1}).requires_grad_();
    pow(x3, 3.0).sum().backward();
    check_values(x3.grad(), {0, 3});
    // sqrt-like powers have an infinite slope at 0, as in PyTorch.
    Tensor h = f64({0}).requires_grad_();
    pow(h, 0.5).sum().backward();
    CHECK(std::isinf(h.grad().item()));
  }
  SUBCASE("pow with a scalar base") {
    Tensor x = f64({1, 3}).requires_grad_();
    pow(2.0, x).sum().backward();
    check_values(x.grad(), {2 * std::log(2.0), 8 * std::log(2.0)});
  }
}

TEST_CASE("pow at zero: second derivatives are finite, and 0^x has derivative 0") {
  // y = a^b; d/db = a^b ln a (0 where a = 0), d2/db2 = a^b (ln a)^2 (0 where a = 0).
  Tensor a = f64({0, 0, 2}), b = f64({2, 0.5, 1}).requires_grad_();
  Tensor gb = grad({pow(a, b).sum()}, {b}, {}, false, true)[0];
  check_values(gb, {0, 0, 2 * std::log(2.0)});
  Tensor gbb = grad({gb.sum()}, {b})[0];
  check_values(gbb, {0, 0, 2 * std::log(2.0) * std::log(2.0)});
  // d/da is 0 where b = 0 (a^0 = 1), and so is its derivative, also at a = 0; elsewhere
  // d/da = b a^(b-1), d2/da2 = b (b-1) a^(b-2), d2/dadb = a^(b-1) (1 + b ln a).
  Tensor p = f64({0, 3}).requires_grad_(), q = f64({0, 2}).requires_grad_();
  TensorList g1 = grad({pow(p, q).sum()}, {p, q}, {}, false, true);
  check_values(g1[0], {0, 6});
  TensorList g2 = grad({g1[0].sum()}, {p, q});
  check_values(g2[0], {0, 2});
  check_values(g2[1], {0, 3 + 6 * std::log(3.0)});
  // A scalar base of 0: 0^x = 0 for x > 0, a constant.
  Tensor x = f64({1, 2.5}).requires_grad_();
  pow(0.0, x).sum().backward();
  check_values(x.grad(), {0, 0});
}

TEST_CASE("maximum's errors name maximum") {
  // Reaching the backward's own shape check: the input's data is replaced after recording.
  Tensor x = f64({1, 5, 3}).requires_grad_(), y = f64({2, 4, 3}).requires_grad_();
  Tensor m = maximum(x, y);
  x.set_data(f64({1, 2}));
  CHECK_THROWS_WITH_PARTS(m.sum().backward(), ShapeError, "maximum");
  Tensor u = f64({1, 5, 3}).requires_grad_(), v = f64({2, 4, 3}).requires_grad_();
  Tensor n = minimum(u, v);
  u.set_data(f64({1, 2}));
  CHECK_THROWS_WITH_PARTS(n.sum().backward(), ShapeError, "minimum");
}

TEST_CASE("minimum and maximum: values, ties split the gradient evenly, NaN propagates") {
  Tensor a = f64({1, 5, 3}), b = f64({2, 4, 3});
  check_values(minimum(a, b), {1, 4, 3});
  check_values(maximum(a, b), {2, 5, 3});
  Tensor x = f64({1, 5, 3}).requires_grad_(), y = f64({2, 4, 3}).requires_grad_();
  maximum(x, y).sum().backward();
  check_values(x.grad(), {0, 1, 0.5});
  check_values(y.grad(), {1, 0, 0.5});
  Tensor p = f64({1, 5, 3}).requires_grad_(), q = f64({2, 4, 3}).requires_grad_();
  minimum(p, q).sum().backward();
  check_values(p.grad(), {1, 0, 0.5});
  check_values(q.grad(), {0, 1, 0.5});
  // Broadcast ties: every element of the row ties with the 0-d value 2 once.
  Tensor r = f64({1, 2, 3}).requires_grad_(), s = scalar_tensor(2.0, float64).requires_grad_();
  maximum(r, s).sum().backward();
  check_values(r.grad(), {0, 0.5, 1});
  CHECK(s.grad().item() == 1.5);
  // NaN on either side gives NaN, so min(a, b) = min(b, a) (as in NumPy and PyTorch).
  Tensor u = f64({kNaN, 1, kNaN}), v = f64({1, kNaN, kNaN});
  CHECK(all_nan(minimum(u, v)));
  CHECK(all_nan(minimum(v, u)));
  CHECK(all_nan(maximum(u, v)));
  CHECK(all_nan(maximum(v, u)));
  CHECK(all_nan(maximum(u.to(float32), v.to(float32))));
  CHECK(maximum(f64({-kInf, 1}), f64({0, kInf})).to_vector<double>() ==
        std::vector<double>{0, kInf});
  CHECK(minimum(f64({-kInf, 1}), f64({0, kInf})).to_vector<double>() ==
        std::vector<double>{-kInf, 1});
}

TEST_CASE("comparisons and logical ops give bool masks that are not differentiable") {
  Tensor a = f64({1, 2, 3}).requires_grad_(), b = f64({3, 2, 1});
  CHECK(mask_values(eq(a, b)) == std::vector<bool>{false, true, false});
  CHECK(mask_values(ne(a, b)) == std::vector<bool>{true, false, true});
  CHECK(mask_values(lt(a, b)) == std::vector<bool>{true, false, false});
  CHECK(mask_values(le(a, b)) == std::vector<bool>{true, true, false});
  CHECK(mask_values(gt(a, b)) == std::vector<bool>{false, false, true});
  CHECK(mask_values(ge(a, b)) == std::vector<bool>{false, true, true});
  CHECK(mask_values(a < 2.0) == std::vector<bool>{true, false, false});
  CHECK(mask_values(a <= 2.0) == std::vector<bool>{true, true, false});
  CHECK(mask_values(a > 2.0) == std::vector<bool>{false, false, true});
  CHECK(mask_values(a >= 2.0) == std::vector<bool>{false, true, true});
  CHECK(mask_values(a < b) == std::vector<bool>{true, false, false});
  CHECK(mask_values(a <= b) == std::vector<bool>{true, true, false});
  CHECK(mask_values(a > b) == std::vector<bool>{false, false, true});
  CHECK(mask_values(a >= b) == std::vector<bool>{false, true, true});
  // No mask has a grad_fn or requires grad, whatever its inputs.
  Tensor bg = b.detach().requires_grad_();
  const std::vector<Tensor> masks = {eq(a, bg),
                                     ne(a, bg),
                                     lt(a, bg),
                                     le(a, bg),
                                     gt(a, bg),
                                     ge(a, bg),
                                     a<bg, a <= bg, a>
                                         bg,
                                     a >= bg,
                                     a<1.0, a <= 1.0, a> 1.0,
                                     a >= 1.0,
                                     logical_not(a),
                                     logical_and(a, bg),
                                     logical_or(a, bg)};
  for (size_t k = 0; k < masks.size(); ++k) {
    INFO("mask " << k);
    CHECK(masks[k].dtype() == boolean);
    CHECK(masks[k].grad_fn() == nullptr);
    CHECK_FALSE(masks[k].requires_grad());
  }
  Tensor p = lt(a, b), q = ge(a, b);
  CHECK(mask_values(logical_not(p)) == std::vector<bool>{false, true, true});
  CHECK(mask_values(logical_and(p, logical_not(q))) == std::vector<bool>{true, false, false});
  CHECK(mask_values(logical_or(p, gt(a, b))) == std::vector<bool>{true, false, true});
  // Non-bool inputs to logical ops count as true where nonzero.
  CHECK(mask_values(logical_not(f64({0, 2, -0.5}))) == std::vector<bool>{true, false, false});
  CHECK(mask_values(logical_and(f64({0, 1, 3}), i64({1, 1, 0}))) ==
        std::vector<bool>{false, true, false});
  CHECK(mask_values(logical_or(f64({0, 0}, {2, 1}), f64({0, 1}, {1, 2}))) ==
        std::vector<bool>{false, true, false, true});
  // Broadcast comparison.
  CHECK(gt(f64({1, 2}, {2, 1}), f64({0, 1, 2}, {1, 3})).shape() == Shape{2, 3});
  CHECK(mask_values(gt(f64({1, 2}, {2, 1}), f64({0, 1, 2}, {1, 3}))) ==
        std::vector<bool>{true, false, false, true, true, false});
  // NaN is unordered and unequal to everything, itself included.
  Tensor n = f64({kNaN, kNaN}), m = f64({kNaN, 1});
  CHECK(mask_values(eq(n, m)) == std::vector<bool>{false, false});
  CHECK(mask_values(ne(n, m)) == std::vector<bool>{true, true});
  CHECK(mask_values(lt(n, m)) == std::vector<bool>{false, false});
  CHECK(mask_values(ge(n, m)) == std::vector<bool>{false, false});
  // A mask taken inside a graph leaves the gradient to the differentiable path.
  Tensor x = f64({-1, 2}).requires_grad_();
  (x * (x > 0.0)).sum().backward();
  check_values(x.grad(), {0, 1});
}

TEST_CASE("where selects with a broadcast condition; gradients go to the chosen side") {
  Tensor cond = gt(f64({1, -1, 2}), scalar_tensor(0, float64));
  Tensor a = f64({1, 2, 3}).requires_grad_(), b = f64({10, 20, 30}).requires_grad_();
  Tensor w = where(cond, a, b);
  check_values(w, {1, 20, 3});
  (w * f64({1, 2, 3})).sum().backward();
  check_values(a.grad(), {1, 0, 3});
  check_values(b.grad(), {0, 2, 0});
  // Condition [2, 1] against values [1, 3] -> [2, 3]; a scalar on one side.
  Tensor c2 = gt(f64({1, -1}, {2, 1}), scalar_tensor(0, float64));
  Tensor r = where(c2, f64({1, 2, 3}, {1, 3}), scalar_tensor(0, float64));
  CHECK(r.shape() == Shape{2, 3});
  check_values(r, {1, 2, 3, 0, 0, 0});
  // The condition alone sets the shape: [2, 1, 3] against 0-d values.
  Tensor c3 = gt(f64({1, -1, 1, -1, 1, -1}, {2, 1, 3}), zeros({}, float64));
  Tensor r3 = where(c3, scalar_tensor(1.0, float64), scalar_tensor(-1.0, float64));
  CHECK(r3.shape() == Shape{2, 1, 3});
  check_values(r3, {1, -1, 1, -1, 1, -1});
  // Gradient sums over the broadcast axes; only one side requires grad.
  Tensor s = scalar_tensor(5.0, float64).requires_grad_();
  where(c2, f64({1, 2, 3}, {1, 3}), s).sum().backward();
  CHECK(s.grad().item() == 3);
  // int64 values stay int64.
  Tensor wi = where(gt(f64({1, -1}), zeros({})), i64({1, 2}), i64({7, 8}));
  CHECK(wi.dtype() == int64);
  check_values(wi, {1, 8});
  // Many elements: the vectorised path with a bool mask and a broadcast scalar.
  Tensor big = leaf({1000}, -1, 1, 5).detach();
  Tensor relu_like = where(gt(big, scalar_tensor(0, float64)), big, scalar_tensor(0, float64));
  auto bv = big.to_vector<double>(), rv = relu_like.to_vector<double>();
  int64_t bad = 0;
  for (size_t i = 0; i < bv.size(); ++i) bad += rv[i] != (bv[i] > 0 ? bv[i] : 0.0);
  CHECK(bad == 0);
}

TEST_CASE("masked_fill writes the value where the mask is set; no gradient flows there") {
  Tensor x = f64({1, 2, 3, 4}, {2, 2}).requires_grad_();
  Tensor mask = i64({0, 1}).to(boolean);
  Tensor y = masked_fill(x, mask, -5.0);  // mask [2] broadcasts over rows
  check_values(y, {1, -5, 3, -5});
  check_values(x, {1, 2, 3, 4});  // the input is untouched
  y.sum().backward();
  check_values(x.grad(), {1, 0, 1, 0});
  Tensor inf_fill = masked_fill(x.detach(), mask, -kInf);
  CHECK(std::isinf(inf_fill.at({0, 1})));
  // dtype kept; a 0-d true mask fills everything.
  Tensor f = masked_fill(Tensor({1.0, 2.0}), mask, 0.25);
  CHECK(f.dtype() == float32);
  check_values(f, {1, 0.25});
  Tensor all = masked_fill(x.detach(), gt(scalar_tensor(1.0), zeros({})), 9.0);
  CHECK(all.shape() == Shape{2, 2});
  check_values(all, {9, 9, 9, 9});
}

TEST_CASE("first and second derivatives of every binary op, plain and broadcast shapes") {
  const Shape same = {2, 3};
  SUBCASE("add / sub with alpha") {
    check_gradients([](const TensorList& v) { return add(v[0], v[1], 0.5); },
                    {leaf(same, -1, 1, 1), leaf(same, -1, 1, 2)});
    check_gradients([](const TensorList& v) { return sub(v[0], v[1], 2.0); },
                    {leaf({2, 1, 3}, -1, 1, 3), leaf({4, 1}, -1, 1, 4)});
    check_gradients([](const TensorList& v) { return sub(v[0], v[1]); },
                    {leaf({3, 1}, -1, 1, 31), leaf({1, 4}, -1, 1, 32)});
  }
  SUBCASE("mul") {
    check_gradients([](const TensorList& v) { return mul(v[0], v[1]); },
                    {leaf(same, -1, 1, 5), leaf(same, -1, 1, 6)});
    check_gradients([](const TensorList& v) { return mul(v[0], v[1]); },
                    {leaf({3, 1}, -1, 1, 7), leaf({1, 4}, -1, 1, 8)});
    check_gradients([](const TensorList& v) { return mul(v[0], v[1]); },
                    {leaf({}, -1, 1, 33), leaf(same, -1, 1, 34)});
    // The same input on both sides: x * x.
    check_gradients([](const TensorList& v) { return mul(v[0], v[0]); }, {leaf(same, -1, 1, 35)});
  }
  SUBCASE("div") {
    check_gradients([](const TensorList& v) { return div(v[0], v[1]); },
                    {leaf(same, -1, 1, 9), positive_leaf(same, 10)});
    check_gradients([](const TensorList& v) { return div(v[0], v[1]); },
                    {leaf({2, 3}, -1, 1, 11), positive_leaf({3}, 12)});
    check_gradients([](const TensorList& v) { return div(v[0], v[1]); },
                    {leaf({3}, -1, 1, 36), positive_leaf({2, 1}, 37)});
  }
  SUBCASE("pow") {
    check_gradients([](const TensorList& v) { return pow(v[0], v[1]); },
                    {positive_leaf(same, 13), leaf(same, -2, 2, 14)});
    check_gradients([](const TensorList& v) { return pow(v[0], v[1]); },
                    {positive_leaf({2, 1}, 15), leaf({1, 3}, -2, 2, 16)});
    check_gradients([](const TensorList& v) { return pow(v[0], 3.0); }, {leaf(same, -1, 1, 17)});
    check_gradients([](const TensorList& v) { return pow(v[0], 2.0); }, {leaf(same, -1, 1, 38)});
    check_gradients([](const TensorList& v) { return pow(v[0], 1.0); }, {leaf(same, -1, 1, 39)});
    check_gradients([](const TensorList& v) { return pow(v[0], 0.0); }, {leaf(same, -1, 1, 40)});
    check_gradients([](const TensorList& v) { return pow(v[0], -1.5); }, {positive_leaf(same, 18)});
    check_gradients([](const TensorList& v) { return pow(2.5, v[0]); }, {leaf(same, -1, 1, 19)});
    check_gradients([](const TensorList& v) { return pow(0.3, v[0]); }, {leaf(same, -1, 1, 41)});
  }
  SUBCASE("minimum / maximum away from ties") {
    Tensor a = leaf(same, -1, 1, 20);
    Tensor b = (a.detach() + f64({0.3, -0.4, 0.5, -0.6, 0.7, -0.8}, same)).requires_grad_();
    check_gradients([](const TensorList& v) { return minimum(v[0], v[1]); }, {a, b});
    check_gradients([](const TensorList& v) { return maximum(v[0], v[1]); }, {a, b});
    // Broadcast: a column against a row, values far apart in most places.
    Tensor c = f64({-1.0, 0.05, 1.0}, {3, 1}).requires_grad_();
    Tensor r = f64({-0.5, 0.5, 1.5, -1.5}, {1, 4}).requires_grad_();
    check_gradients([](const TensorList& v) { return minimum(v[0], v[1]); }, {c, r});
    check_gradients([](const TensorList& v) { return maximum(v[0], v[1]); }, {c, r});
  }
  SUBCASE("scalar forms and every operator") {
    check_gradients([](const TensorList& v) { return 3.0 - v[0] * 2.0 + 1.0; },
                    {leaf(same, -1, 1, 21)});
    check_gradients([](const TensorList& v) { return rdiv(v[0], 2.0); }, {positive_leaf(same, 22)});
    const std::vector<std::pair<const char*, std::function<Tensor(const TensorList&)>>> unary = {
        {"-a", [](const TensorList& v) { return -v[0]; }},
        {"a + 2", [](const TensorList& v) { return v[0] + 2.0; }},
        {"2 + a", [](const TensorList& v) { return 2.0 + v[0]; }},
        {"a - 2", [](const TensorList& v) { return v[0] - 2.0; }},
        {"2 - a", [](const TensorList& v) { return 2.0 - v[0]; }},
        {"a * 3", [](const TensorList& v) { return v[0] * 3.0; }},
        {"3 * a", [](const TensorList& v) { return 3.0 * v[0]; }},
        {"a / 4", [](const TensorList& v) { return v[0] / 4.0; }},
        {"4 / a", [](const TensorList& v) { return 4.0 / v[0]; }},
        {"add(a, s)", [](const TensorList& v) { return add(v[0], -0.7); }},
        {"mul(a, s)", [](const TensorList& v) { return mul(v[0], -0.7); }},
        {"rsub(a, s)", [](const TensorList& v) { return rsub(v[0], 0.7); }},
    };
    for (const auto& [name, f] : unary) {
      INFO(name);
      check_gradients(f, {positive_leaf(same, 42)});
    }
    const std::vector<std::pair<const char*, std::function<Tensor(const TensorList&)>>> binary = {
        {"a + b", [](const TensorList& v) { return v[0] + v[1]; }},
        {"a - b", [](const TensorList& v) { return v[0] - v[1]; }},
        {"a * b", [](const TensorList& v) { return v[0] * v[1]; }},
        {"a / b", [](const TensorList& v) { return v[0] / v[1]; }},
    };
    for (const auto& [name, f] : binary) {
      INFO(name);
      check_gradients(f, {leaf(same, -1, 1, 43), positive_leaf({3}, 44)});
    }
  }
  SUBCASE("strided inputs") {
    check_gradients([](const TensorList& v) { return mul(v[0].t(), v[1]); },
                    {leaf({3, 2}, -1, 1, 45), leaf({2, 3}, -1, 1, 46)});
    check_gradients([](const TensorList& v) { return div(slice(v[0], 1, 0, 4, 2), v[1]); },
                    {leaf({3, 4}, -1, 1, 47), positive_leaf({3, 1}, 48)});
    check_gradients([](const TensorList& v) { return pow(v[0].t(), v[1].t()); },
                    {positive_leaf({3, 2}, 49), leaf({3, 2}, -1, 1, 50)});
  }
  SUBCASE("where and masked_fill") {
    Tensor cond = gt(leaf({2, 3}, -1, 1, 23).detach(), scalar_tensor(0, float64));
    check_gradients([cond](const TensorList& v) { return where(cond, v[0], v[1]); },
                    {leaf({2, 3}, -1, 1, 24), leaf({3}, -1, 1, 25)});
    check_gradients([cond](const TensorList& v) { return masked_fill(v[0], cond, 7.0); },
                    {leaf({2, 3}, -1, 1, 26)});
    // The condition broadcasts both values up: [2, 1, 3] with [4, 1] and a 0-d value.
    Tensor c3 = gt(leaf({2, 1, 3}, -1, 1, 27).detach(), scalar_tensor(0, float64));
    check_gradients([c3](const TensorList& v) { return where(c3, v[0], v[1]); },
                    {leaf({4, 1}, -1, 1, 28), leaf({}, -1, 1, 29)});
    Tensor row_mask = gt(leaf({3}, -1, 1, 30).detach(), scalar_tensor(0, float64));
    check_gradients([row_mask](const TensorList& v) { return masked_fill(v[0], row_mask, -2.0); },
                    {leaf({2, 3}, -1, 1, 51)});
  }
}

TEST_CASE("bad input: shapes that do not broadcast name the op and both shapes") {
  const std::vector<std::pair<const char*, BinaryFn>> ops = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b, 2.0); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return a < b; }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); }},
      {"le", [](const Tensor& a, const Tensor& b) { return a <= b; }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }},
      {"gt", [](const Tensor& a, const Tensor& b) { return a > b; }},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }},
      {"ge", [](const Tensor& a, const Tensor& b) { return a >= b; }},
      {"logical_and", [](const Tensor& a, const Tensor& b) { return logical_and(a, b); }},
      {"logical_or", [](const Tensor& a, const Tensor& b) { return logical_or(a, b); }},
  };
  for (const auto& [name, f] : ops) {
    INFO(name);
    CHECK_THROWS_WITH_PARTS(f(zeros({2, 3}), zeros({3, 2})), ShapeError, name, "[2, 3]", "[3, 2]");
    CHECK_THROWS_WITH_PARTS(f(zeros({5}), zeros({2}, float64)), ShapeError, name, "[5]", "[2]");
    // An empty axis only broadcasts against 1.
    CHECK_THROWS_WITH_PARTS(f(zeros({0}), zeros({2})), ShapeError, name, "[0]", "[2]");
  }
  // A failed op records nothing and leaves its inputs alone.
  Tensor x = zeros({2}, float64).requires_grad_();
  CHECK_THROWS_AS(mul(x, zeros({3}, float64)), ShapeError);
  CHECK(x.grad_fn() == nullptr);
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("bad input: where and masked_fill") {
  CHECK_THROWS_WITH_PARTS(where(zeros({3}), zeros({3}), zeros({3})), DtypeError, "where", "bool",
                          "float32");
  CHECK_THROWS_WITH_PARTS(where(i64({1, 0}), zeros({2}), zeros({2})), DtypeError, "where", "bool",
                          "int64");
  CHECK_THROWS_WITH_PARTS(where(gt(zeros({2}), zeros({2})), zeros({3}), zeros({3})), ShapeError,
                          "where", "[2]", "[3]");
  CHECK_THROWS_WITH_PARTS(where(gt(zeros({3}), zeros({3})), zeros({3}), zeros({2, 2})), ShapeError,
                          "where", "[3]", "[2, 2]");
  CHECK_THROWS_WITH_PARTS(masked_fill(zeros({3}), zeros({3}), 1.0), DtypeError, "masked_fill",
                          "bool");
  // A mask that would enlarge the input is refused (the result has the input's shape).
  CHECK_THROWS_WITH_PARTS(masked_fill(zeros({3}), gt(zeros({2, 3}), zeros({})), 1.0), ShapeError,
                          "masked_fill", "[2, 3]", "[3]");
  CHECK_THROWS_WITH_PARTS(masked_fill(zeros({3}), gt(zeros({2}), zeros({})), 1.0), ShapeError,
                          "masked_fill", "[3]", "[2]");
}
