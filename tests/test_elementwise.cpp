// Binary elementwise ops: values against hand computations, NumPy broadcasting (one side, both
// sides, 0-d, empty), strided inputs, dtype promotion, the C++ operators, comparisons and masks,
// where / masked_fill, first and second derivatives (float64 gradcheck and gradgradcheck, plain and
// broadcast shapes) and the errors.
#include <cmath>
#include <limits>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::leaf;

namespace {

Tensor f64(std::vector<double> v, const Shape& shape) { return Tensor::from_vector(v, shape); }
Tensor f64(std::vector<double> v) { return Tensor::from_vector(v); }

void check_values(const Tensor& got, const std::vector<double>& expected, double tol = 1e-12) {
  auto v = got.to(float64).to_vector<double>();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i);
    CHECK(v[i] == doctest::Approx(expected[i]).epsilon(tol));
  }
}

std::vector<bool> mask_values(const Tensor& m) {
  REQUIRE(m.dtype() == boolean);
  std::vector<bool> r;
  Tensor c = m.contiguous();
  for (int64_t i = 0; i < c.numel(); ++i) r.push_back(c.data<bool>()[i]);
  return r;
}

// A leaf with no entry near zero (for division, pow and log-based derivatives).
Tensor positive_leaf(const Shape& s, uint64_t seed) { return leaf(s, 0.5, 2.0, seed); }

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
  check_values(6.0 / a, {6, 3, 2});
  check_values(rsub(a, 10.0), {9, 8, 7});
  check_values(rdiv(a, 3.0), {3, 1.5, 1});
  // Scalar ops keep the tensor's dtype; float32 stays float32.
  CHECK((Tensor({1.0, 2.0}) * 3.0).dtype() == float32);
  CHECK((a * 3.0).dtype() == float64);
}

TEST_CASE("broadcasting: one side, both sides, leading axes, 0-d and empty tensors") {
  Tensor col = f64({1, 2, 3}, {3, 1}), row = f64({10, 20, 30, 40}, {1, 4});
  Tensor s = add(col, row);
  CHECK(s.shape() == Shape{3, 4});
  check_values(s, {11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43});
  Tensor m = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  check_values(mul(m, f64({1, 10, 100})), {1, 20, 300, 4, 50, 600});
  Tensor three = leaf({2, 1, 3}).detach();
  CHECK(add(three, leaf({4, 1}).detach()).shape() == Shape{2, 4, 3});
  Tensor zero_d = scalar_tensor(2.0, float64);
  CHECK(mul(zero_d, zero_d).shape() == Shape{});
  CHECK(mul(zero_d, zero_d).item() == 4.0);
  check_values(sub(m, zero_d), {-1, 0, 1, 2, 3, 4});
  Tensor empty = zeros({0, 3}, float64);
  CHECK(add(empty, f64({1, 2, 3})).shape() == Shape{0, 3});
  CHECK(add(zeros({0, 1}), zeros({1, 5})).shape() == Shape{0, 5});
}

TEST_CASE("strided inputs (transposes, slices, expanded views) give the contiguous results") {
  Tensor a = leaf({4, 5}, -1, 1, 3).detach(), b = leaf({5, 4}, -1, 1, 4).detach();
  CHECK(test::allclose(mul(a.t(), b), mul(a.t().contiguous(), b), 0, 0));
  CHECK(test::allclose(div(b, a.t()), div(b, a.t().contiguous()), 0, 0));
  Tensor every_other = slice(a, 1, 0, 5, 2);
  CHECK(test::allclose(add(every_other, every_other), mul(every_other.contiguous(), 2.0), 0, 0));
  Tensor row = slice(a, 0, 1, 2);
  CHECK(test::allclose(sub(a, row.expand({4, 5})), sub(a, row), 0, 0));
}

TEST_CASE("float32 with float64 promotes to float64; bool and int64 arithmetic") {
  Tensor f = Tensor({1.0, 2.0}), d = f64({0.5, 0.25});
  CHECK(add(f, d).dtype() == float64);
  CHECK(mul(d, f).dtype() == float64);
  check_values(add(f, d), {1.5, 2.25});
  Tensor i = Tensor::from_vector(std::vector<int64_t>{1, 2});
  CHECK(add(i, i).dtype() == int64);
  check_values(add(i, i), {2, 4});
  CHECK(add(i, f).dtype() == float32);
}

TEST_CASE("pow: tensor^scalar, tensor^tensor, scalar^tensor") {
  Tensor a = f64({1, 2, 3});
  check_values(pow(a, 2.0), {1, 4, 9});
  check_values(pow(a, 0.5), {1, std::sqrt(2.0), std::sqrt(3.0)});
  check_values(pow(a, f64({3, 2, 1})), {1, 4, 3});
  check_values(pow(2.0, a), {2, 4, 8});
  check_values(a.pow(-1.0), {1, 0.5, 1.0 / 3});
  // Broadcast exponent.
  check_values(pow(f64({2, 3}, {2, 1}), f64({1, 2}, {1, 2})), {2, 4, 3, 9});
}

TEST_CASE("minimum and maximum: values, and ties split the gradient evenly") {
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
  Tensor m = gt(a, b);
  CHECK(m.grad_fn() == nullptr);
  CHECK_FALSE(m.requires_grad());
  Tensor p = lt(a, b), q = ge(a, b);
  CHECK(mask_values(logical_not(p)) == std::vector<bool>{false, true, true});
  CHECK(mask_values(logical_and(p, logical_not(q))) == std::vector<bool>{true, false, false});
  CHECK(mask_values(logical_or(p, gt(a, b))) == std::vector<bool>{true, false, true});
  // Broadcast comparison.
  CHECK(gt(f64({1, 2}, {2, 1}), f64({0, 1, 2}, {1, 3})).shape() == Shape{2, 3});
  CHECK(mask_values(gt(f64({1, 2}, {2, 1}), f64({0, 1, 2}, {1, 3}))) ==
        std::vector<bool>{true, false, false, true, true, false});
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
  // Many elements: the vectorised path with a bool mask and a broadcast scalar.
  Tensor big = leaf({1000}, -1, 1, 5).detach();
  Tensor relu_like = where(gt(big, scalar_tensor(0, float64)), big, scalar_tensor(0, float64));
  auto bv = big.to_vector<double>(), rv = relu_like.to_vector<double>();
  for (size_t i = 0; i < bv.size(); ++i) CHECK(rv[i] == (bv[i] > 0 ? bv[i] : 0.0));
}

TEST_CASE("masked_fill writes the value where the mask is set; no gradient flows there") {
  Tensor x = f64({1, 2, 3, 4}, {2, 2}).requires_grad_();
  Tensor mask = Tensor::from_vector(std::vector<int64_t>{0, 1}).to(boolean);
  Tensor y = masked_fill(x, mask, -5.0);  // mask [2] broadcasts over rows
  check_values(y, {1, -5, 3, -5});
  y.sum().backward();
  check_values(x.grad(), {1, 0, 1, 0});
  Tensor inf_fill = masked_fill(x.detach(), mask, -std::numeric_limits<double>::infinity());
  CHECK(std::isinf(inf_fill.at({0, 1})));
}

TEST_CASE("first and second derivatives of every binary op, plain and broadcast shapes") {
  const Shape same = {2, 3};
  SUBCASE("add / sub with alpha") {
    check_gradients([](const TensorList& v) { return add(v[0], v[1], 0.5); },
                    {leaf(same, -1, 1, 1), leaf(same, -1, 1, 2)});
    check_gradients([](const TensorList& v) { return sub(v[0], v[1], 2.0); },
                    {leaf({2, 1, 3}, -1, 1, 3), leaf({4, 1}, -1, 1, 4)});
  }
  SUBCASE("mul") {
    check_gradients([](const TensorList& v) { return mul(v[0], v[1]); },
                    {leaf(same, -1, 1, 5), leaf(same, -1, 1, 6)});
    check_gradients([](const TensorList& v) { return mul(v[0], v[1]); },
                    {leaf({3, 1}, -1, 1, 7), leaf({1, 4}, -1, 1, 8)});
  }
  SUBCASE("div") {
    check_gradients([](const TensorList& v) { return div(v[0], v[1]); },
                    {leaf(same, -1, 1, 9), positive_leaf(same, 10)});
    check_gradients([](const TensorList& v) { return div(v[0], v[1]); },
                    {leaf({2, 3}, -1, 1, 11), positive_leaf({3}, 12)});
  }
  SUBCASE("pow") {
    check_gradients([](const TensorList& v) { return pow(v[0], v[1]); },
                    {positive_leaf(same, 13), leaf(same, -2, 2, 14)});
    check_gradients([](const TensorList& v) { return pow(v[0], v[1]); },
                    {positive_leaf({2, 1}, 15), leaf({1, 3}, -2, 2, 16)});
    check_gradients([](const TensorList& v) { return pow(v[0], 3.0); }, {leaf(same, -1, 1, 17)});
    check_gradients([](const TensorList& v) { return pow(v[0], -1.5); }, {positive_leaf(same, 18)});
    check_gradients([](const TensorList& v) { return pow(2.5, v[0]); }, {leaf(same, -1, 1, 19)});
  }
  SUBCASE("minimum / maximum away from ties") {
    Tensor a = leaf(same, -1, 1, 20);
    Tensor b = (a.detach() + f64({0.3, -0.4, 0.5, -0.6, 0.7, -0.8}, same)).requires_grad_();
    check_gradients([](const TensorList& v) { return minimum(v[0], v[1]); }, {a, b});
    check_gradients([](const TensorList& v) { return maximum(v[0], v[1]); }, {a, b});
  }
  SUBCASE("scalar forms") {
    check_gradients([](const TensorList& v) { return 3.0 - v[0] * 2.0 + 1.0; },
                    {leaf(same, -1, 1, 21)});
    check_gradients([](const TensorList& v) { return rdiv(v[0], 2.0); }, {positive_leaf(same, 22)});
  }
  SUBCASE("where and masked_fill") {
    Tensor cond = gt(leaf({2, 3}, -1, 1, 23).detach(), scalar_tensor(0, float64));
    check_gradients([cond](const TensorList& v) { return where(cond, v[0], v[1]); },
                    {leaf({2, 3}, -1, 1, 24), leaf({3}, -1, 1, 25)});
    check_gradients([cond](const TensorList& v) { return masked_fill(v[0], cond, 7.0); },
                    {leaf({2, 3}, -1, 1, 26)});
  }
}

TEST_CASE("bad input: shapes that do not broadcast, masks that are not bool") {
  CHECK_THROWS_WITH_PARTS(add(zeros({2, 3}), zeros({4})), ShapeError, "add", "[2, 3]", "[4]");
  CHECK_THROWS_WITH_PARTS(mul(zeros({2, 3}), zeros({3, 2})), ShapeError, "mul", "[2, 3]", "[3, 2]");
  CHECK_THROWS_WITH_PARTS(zeros({5}) / zeros({2}), ShapeError, "div", "[5]", "[2]");
  CHECK_THROWS_WITH_PARTS(gt(zeros({5}), zeros({2})), ShapeError, "[5]", "[2]");
  CHECK_THROWS_WITH_PARTS(where(zeros({3}), zeros({3}), zeros({3})), DtypeError, "where", "bool");
  CHECK_THROWS_WITH_PARTS(where(gt(zeros({2}), zeros({2})), zeros({3}), zeros({3})), ShapeError,
                          "where", "[2]", "[3]");
  CHECK_THROWS_WITH_PARTS(masked_fill(zeros({3}), zeros({3}), 1.0), DtypeError, "masked_fill",
                          "bool");
  // A mask that would enlarge the input is refused (the result has the input's shape).
  CHECK_THROWS_WITH_PARTS(masked_fill(zeros({3}), gt(zeros({2, 3}), zeros({})), 1.0), ShapeError,
                          "masked_fill", "[2, 3]", "[3]");
}
