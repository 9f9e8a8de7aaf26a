// The functional API (autograd/functional.h): Jacobians and Hessians of composite functions against
// their closed forms, products against the full matrices, forward against reverse strategies,
// create_graph results differentiated again (and gradchecked), bad arguments. float64 throughout.
#include <cmath>

#include "support.h"

using namespace ag;
using test::f64;
using test::leaf;
using test::values;

namespace {

// Random float64 tensor (no grad), values in [lo, hi).
Tensor rnd(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Generator g(seed);
  return uniform(shape, lo, hi, float64, &g);
}

// Largest |a - b| over all elements (shapes must match).
double max_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  auto x = values(a), y = values(b);
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

double dot_all(const TensorList& a, const TensorList& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += sum(mul(a[i], b[i])).item();
  return s;
}

// A matrix [n, n] from a tensor of shape [n..., n...] (a Jacobian or Hessian block).
Tensor as_matrix(const Tensor& t, int64_t rows) { return t.reshape({rows, t.numel() / rows}); }

}  // namespace

TEST_CASE("jacobian of softmax is diag(s) - s s^T, by both strategies") {
  Tensor x = f64({0.3, -1.2, 2.0, 0.5, -0.1});
  Tensor s = softmax(x, 0).detach();
  Tensor expected = sub(mul(eye(5, float64), s.unsqueeze(0)), outer(s, s));
  auto f = [](const Tensor& t) { return softmax(t, 0); };
  Tensor J = jacobian(f, x);
  CHECK(J.shape() == Shape{5, 5});
  CHECK(max_diff(J, expected) < 1e-15);
  auto fl = [](const TensorList& t) { return TensorList{softmax(t[0], 0)}; };
  JacobianTable Jf = jacobian(fl, {x}, false, JacobianStrategy::forward);
  REQUIRE(Jf.size() == 1);
  REQUIRE(Jf[0].size() == 1);
  CHECK(max_diff(Jf[0][0], expected) < 1e-15);
  CHECK(!J.requires_grad());
}

TEST_CASE("jacobian shape is f(x).shape + x.shape, element [a, b] = d f[a] / d x[b]") {
  // f(x) = 2 x^T for x [2, 3]: J[a, b, c, d] = 2 if (a, b) == (d, c).
  Tensor x = rnd({2, 3}, 1);
  Tensor J = jacobian([](const Tensor& t) { return mul(t.t(), 2.0); }, x);
  REQUIRE(J.shape() == Shape{3, 2, 2, 3});
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 2; ++c)
        for (int64_t d = 0; d < 3; ++d) CHECK(J.at({a, b, c, d}) == (a == d && b == c ? 2.0 : 0.0));
  // A 0-d input and a 0-d output.
  Tensor t = scalar_tensor(0.7, float64);
  Tensor J1 = jacobian([](const Tensor& u) { return mul(stack({u, square(u), sin(u)}), 1.0); }, t);
  CHECK(J1.shape() == Shape{3});
  test::check_values(J1, {1.0, 1.4, std::cos(0.7)});
  Tensor J2 = jacobian([](const Tensor& u) { return sum(exp(u)); }, x);
  CHECK(J2.shape() == Shape{2, 3});
  CHECK(max_diff(J2, exp(x)) < 1e-15);
}

TEST_CASE("jacobian of a function of two inputs with two outputs: the table J[i][j]") {
  // y0 = a * b (elementwise, [3]), y1 = a^T M b (0-d), M [3, 3].
  Tensor a = rnd({3}, 2), b = rnd({3}, 3), M = rnd({3, 3}, 4);
  auto f = [M](const TensorList& x) {
    return TensorList{mul(x[0], x[1]), sum(mul(x[0], matmul(M, x[1])))};
  };
  for (auto strategy : {JacobianStrategy::reverse, JacobianStrategy::forward}) {
    JacobianTable J = jacobian(f, {a, b}, false, strategy);
    REQUIRE(J.size() == 2);
    REQUIRE(J[0].size() == 2);
    CHECK(J[0][0].shape() == Shape{3, 3});
    CHECK(J[1][1].shape() == Shape{3});
    Tensor I = eye(3, float64);
    CHECK(max_diff(J[0][0], mul(I, b.unsqueeze(0))) < 1e-15);  // diag(b)
    CHECK(max_diff(J[0][1], mul(I, a.unsqueeze(0))) < 1e-15);  // diag(a)
    CHECK(max_diff(J[1][0], matmul(M, b)) < 1e-15);            // M b
    CHECK(max_diff(J[1][1], matmul(M.t(), a)) < 1e-15);        // M^T a
  }
}

TEST_CASE("forward and reverse Jacobians agree on a composite function") {
  Tensor x = rnd({4}, 5), W = rnd({3, 4}, 6), c = rnd({2, 3}, 7);
  auto f = [](const TensorList& in) {
    Tensor h = tanh(matmul(in[1], in[0]));  // [3]
    return TensorList{mul(in[2], h.unsqueeze(0)), logsumexp(h, {0}), sigmoid(in[0]).sum()};
  };
  JacobianTable r = jacobian(f, {x, W, c}, false, JacobianStrategy::reverse);
  JacobianTable fw = jacobian(f, {x, W, c}, false, JacobianStrategy::forward);
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) {
      INFO("block " << i << ", " << j);
      CHECK(max_diff(r[i][j], fw[i][j]) < 1e-14);
    }
  CHECK(r[0][1].shape() == Shape{2, 3, 3, 4});
  // An output that does not depend on an input: a zero block.
  CHECK(max_diff(r[2][1], zeros({3, 4}, float64)) == 0.0);
  CHECK(max_diff(fw[2][2], zeros({2, 3}, float64)) == 0.0);
}

TEST_CASE("hessian of x^T A x is A + A^T") {
  Tensor A = rnd({4, 4}, 8);  // not symmetric
  Tensor x = rnd({4}, 9);
  auto q = [A](const Tensor& t) { return sum(mul(t, matmul(A, t))); };
  Tensor H = hessian(q, x);
  CHECK(H.shape() == Shape{4, 4});
  CHECK(max_diff(H, add(A, A.t())) < 1e-14);
  // As a matrix input: f(X) = sum(X * X) has H = 2 I over the entries, of shape [2, 3, 2, 3].
  Tensor X = rnd({2, 3}, 10);
  Tensor H2 = hessian([](const Tensor& t) { return sum(square(t)); }, X);
  CHECK(H2.shape() == Shape{2, 3, 2, 3});
  CHECK(max_diff(as_matrix(H2, 6), mul(eye(6, float64), 2.0)) < 1e-15);
}

TEST_CASE("hessian of the logistic loss is X^T diag(p (1 - p)) X / n") {
  const int64_t n = 20, d = 4;
  Tensor X = rnd({n, d}, 11, -2.0, 2.0);
  Generator g(12);
  Tensor y = gt(uniform({n}, 0.0, 1.0, float64, &g), scalar_tensor(0.5, float64)).to(float64);
  Tensor w = rnd({d}, 13);
  // Binary cross-entropy of sigmoid(X w), written out (log p and log(1 - p)).
  auto loss = [X, y](const Tensor& wt) {
    Tensor p = sigmoid(matmul(X, wt));
    return neg(mean(add(mul(y, log(p)), mul(rsub(y, 1.0), log(rsub(p, 1.0))))));
  };
  Tensor p = sigmoid(matmul(X, w));
  Tensor D = mul(p, rsub(p, 1.0));  // p (1 - p), [n]
  Tensor expected = div(matmul(X.t(), mul(X, D.unsqueeze(1))), Tensor(static_cast<double>(n)));
  Tensor H = hessian(loss, w);
  CHECK(max_diff(H, expected) < 1e-14);
  // The outer strategies agree.
  auto lf = [&loss](const TensorList& t) { return loss(t[0]); };
  JacobianTable Hr = hessian(ScalarFn(lf), {w}, false, JacobianStrategy::reverse);
  CHECK(max_diff(Hr[0][0], expected) < 1e-14);
  // Its gradient, by vjp, is X^T (p - y) / n.
  auto [out, gw] = vjp([&loss](const TensorList& t) { return TensorList{loss(t[0])}; }, {w});
  CHECK(out[0].dim() == 0);
  CHECK(max_diff(gw[0], div(matmul(X.t(), sub(p, y)), Tensor(static_cast<double>(n)))) < 1e-15);
}

TEST_CASE("hessian of a function of two vectors: f(x, y) = (x . y)^2") {
  // H_xx = 2 y y^T, H_xy = 2 (y x^T + (x . y) I), H_yx = H_xy^T, H_yy = 2 x x^T.
  Tensor x = rnd({3}, 14), y = rnd({3}, 15);
  auto f = [](const TensorList& t) { return square(sum(mul(t[0], t[1]))); };
  double s = sum(mul(x, y)).item();
  Tensor I = eye(3, float64);
  Tensor Hxx = mul(outer(y, y), 2.0), Hyy = mul(outer(x, x), 2.0);
  Tensor Hxy = mul(add(outer(y, x), mul(I, s)), 2.0);
  for (auto outer_strategy : {JacobianStrategy::forward, JacobianStrategy::reverse}) {
    JacobianTable H = hessian(ScalarFn(f), {x, y}, false, outer_strategy);
    REQUIRE(H.size() == 2);
    CHECK(max_diff(H[0][0], Hxx) < 1e-14);
    CHECK(max_diff(H[0][1], Hxy) < 1e-14);
    CHECK(max_diff(H[1][0], Hxy.t()) < 1e-14);
    CHECK(max_diff(H[1][1], Hyy) < 1e-14);
  }
  // The TensorFn form, and shapes of blocks of different inputs: x [2, 2], y [3].
  Tensor X = rnd({2, 2}, 16), Y = rnd({3}, 17);
  auto g = [](const TensorList& t) { return TensorList{mul(sum(square(t[0])), sum(exp(t[1])))}; };
  JacobianTable H = hessian(TensorFn(g), {X, Y});
  CHECK(H[0][0].shape() == Shape{2, 2, 2, 2});
  CHECK(H[0][1].shape() == Shape{2, 2, 3});
  CHECK(H[1][0].shape() == Shape{3, 2, 2});
  CHECK(H[1][1].shape() == Shape{3, 3});
  // d^2/dX dY = 2 X exp(Y)^T
  CHECK(max_diff(H[0][1], mul(mul(X, 2.0).unsqueeze(2), exp(Y).reshape({1, 1, 3}))) < 1e-14);
}

TEST_CASE("hvp and vhp equal the Hessian times the vector") {
  Tensor a = rnd({3}, 18), B = rnd({2, 3}, 19);
  Tensor va = rnd({3}, 20), vB = rnd({2, 3}, 21);
  auto f = [](const TensorList& t) {
    return add(sum(tanh(matmul(t[1], t[0]))), mul(sum(pow(t[0], 3.0)), sum(sigmoid(t[1]))));
  };
  JacobianTable H = hessian(ScalarFn(f), {a, B});
  // (H v)_i = sum_j H[i][j] . v_j, the blocks as matrices (input i has sizes[i] elements).
  const int64_t sizes[] = {3, 6};
  auto apply = [&](size_t i) {
    Tensor r = add(matmul(as_matrix(H[i][0], sizes[i]), va),
                   matmul(as_matrix(H[i][1], sizes[i]), vB.reshape({6})));
    return r.reshape(i == 0 ? a.shape() : B.shape());
  };
  auto [y1, hv] = hvp(ScalarFn(f), {a, B}, {va, vB});
  auto [y2, vh] = vhp(ScalarFn(f), {a, B}, {va, vB});
  CHECK(y1.item() == doctest::Approx(f({a, B}).item()).epsilon(1e-15));
  CHECK(y2.item() == doctest::Approx(y1.item()).epsilon(1e-15));
  for (size_t i = 0; i < 2; ++i) {
    CHECK(max_diff(hv[i], apply(i)) < 1e-13);
    CHECK(max_diff(vh[i], apply(i)) < 1e-13);
  }
  // The TensorFn forms.
  auto fl = [&f](const TensorList& t) { return TensorList{f(t)}; };
  CHECK(max_diff(hvp(TensorFn(fl), {a, B}, {va, vB}).second[1], hv[1]) == 0.0);
  CHECK(max_diff(vhp(TensorFn(fl), {a, B}, {va, vB}).second[0], vh[0]) == 0.0);
}

TEST_CASE("jvp and vjp are consistent: <u, J v> = <J^T u, v>, and J v matches the Jacobian") {
  Tensor x = rnd({3, 4}, 22), w = rnd({4}, 23);
  auto f = [](const TensorList& t) {
    Tensor h = matmul(t[0], t[1]);  // [3]
    return TensorList{tanh(h), mul(exp(t[0]), t[1].unsqueeze(0))};
  };
  TensorList v = {rnd({3, 4}, 24), rnd({4}, 25)};
  TensorList u = {rnd({3}, 26), rnd({3, 4}, 27)};
  auto [y1, Jv] = jvp(f, {x, w}, v);
  auto [y2, JTu] = vjp(f, {x, w}, u);
  REQUIRE(Jv.size() == 2);
  CHECK(Jv[0].shape() == Shape{3});
  CHECK(Jv[1].shape() == Shape{3, 4});
  CHECK(JTu[0].shape() == Shape{3, 4});
  CHECK(JTu[1].shape() == Shape{4});
  CHECK(max_diff(y1[1], y2[1]) == 0.0);
  double lhs = dot_all(u, Jv), rhs = dot_all(JTu, v);
  CHECK(lhs == doctest::Approx(rhs).epsilon(1e-13));
  CHECK(std::abs(lhs) > 1e-3);  // not trivially zero
  // J v from the full Jacobian.
  JacobianTable J = jacobian(f, {x, w});
  Tensor Jv0 = add(matmul(as_matrix(J[0][0], 3), v[0].reshape({12})), matmul(J[0][1], v[1]));
  CHECK(max_diff(Jv[0], Jv0) < 1e-14);
  // The single-tensor form returns f(x) and J v.
  Tensor z = rnd({5}, 28), dz = rnd({5}, 29);
  auto [fz, jz] = jvp([](const Tensor& t) { return mul(sin(t), t); }, z, dz);
  CHECK(max_diff(fz, mul(sin(z), z)) == 0.0);
  CHECK(max_diff(jz, mul(add(mul(cos(z), z), sin(z)), dz)) < 1e-15);
}

TEST_CASE("v and u may be left out for a single one-element tensor") {
  Tensor t = scalar_tensor(0.4, float64);
  auto [y, d] = jvp([](const TensorList& a) { return TensorList{exp(a[0])}; }, {t});
  CHECK(d[0].item() == doctest::Approx(std::exp(0.4)).epsilon(1e-15));
  Tensor x = rnd({3}, 30);
  auto [l, g] = vjp([](const TensorList& a) { return TensorList{sum(square(a[0]))}; }, {x});
  CHECK(max_diff(g[0], mul(x, 2.0)) < 1e-15);
}

TEST_CASE("create_graph: the results can be differentiated again") {
  Tensor x = leaf({4}, 0.2, 1.0, 31);
  // J of x^3 is diag(3 x^2); d/dx sum(J) = 6 x.
  JacobianTable J = jacobian([](const TensorList& t) { return TensorList{pow(t[0], 3.0)}; }, {x},
                             /*create_graph=*/true);
  REQUIRE(J[0][0].requires_grad());
  sum(J[0][0]).backward();
  CHECK(max_diff(x.grad(), mul(x, 6.0)) < 1e-14);
  // Without create_graph nothing is recorded and the input's .grad is left alone.
  x.zero_grad();
  JacobianTable J0 = jacobian([](const TensorList& t) { return TensorList{pow(t[0], 3.0)}; }, {x});
  CHECK(!J0[0][0].requires_grad());
  CHECK(!x.grad().defined());

  // Third derivatives, gradchecked: the Jacobian (both strategies), jvp, hvp, vhp and the Hessian
  // as functions of the input.
  Tensor v = rnd({4}, 32);
  auto cubic = [](const TensorList& t) { return TensorList{mul(sin(t[0]), sum(pow(t[0], 3.0)))}; };
  auto objective = [](const TensorList& t) { return sum(mul(exp(t[0]), pow(t[0], 3.0))); };
  for (auto s : {JacobianStrategy::reverse, JacobianStrategy::forward})
    test::check_gradients([&](const TensorList& in) { return jacobian(cubic, in, true, s)[0][0]; },
                          {x}, false);
  test::check_gradients([&](const TensorList& in) { return jvp(cubic, in, {v}, true).second[0]; },
                        {x}, false);
  test::check_gradients(
      [&](const TensorList& in) { return hvp(ScalarFn(objective), in, {v}, true).second[0]; }, {x},
      false);
  test::check_gradients(
      [&](const TensorList& in) { return vhp(ScalarFn(objective), in, {v}, true).second[0]; }, {x},
      false);
  test::check_gradients(
      [&](const TensorList& in) { return hessian(ScalarFn(objective), in, true)[0][0]; }, {x},
      false);
  // vjp with create_graph: gradgradcheck's first derivative is a vjp too.
  test::check_gradients([&](const TensorList& in) { return vjp(cubic, in, {v}, true).second[0]; },
                        {x}, false);
}

TEST_CASE("the functional API works inside NoGradGuard and in float32") {
  Tensor x = rnd({3}, 33);
  {
    NoGradGuard off;
    Tensor H = hessian([](const Tensor& t) { return sum(pow(t, 4.0)); }, x);
    CHECK(max_diff(H, mul(eye(3, float64), mul(square(x), 12.0).unsqueeze(0))) < 1e-14);
    CHECK(!is_grad_enabled());
  }
  Tensor x32 = x.to(float32);
  Tensor J = jacobian([](const Tensor& t) { return exp(t); }, x32);
  CHECK(J.dtype() == float32);
  CHECK(test::allclose(J, mul(eye(3, float32), exp(x32).unsqueeze(0)), 1e-6, 1e-6));
}

TEST_CASE("outputs that do not depend on the inputs give zeros") {
  Tensor x = rnd({2}, 34);
  Tensor c = rnd({3}, 35);
  auto f = [c](const TensorList&) { return TensorList{c}; };
  JacobianTable Jr = jacobian(f, {x});
  JacobianTable Jf = jacobian(f, {x}, false, JacobianStrategy::forward);
  CHECK(Jr[0][0].shape() == Shape{3, 2});
  CHECK(max_diff(Jr[0][0], zeros({3, 2}, float64)) == 0.0);
  CHECK(max_diff(Jf[0][0], zeros({3, 2}, float64)) == 0.0);
  auto [y, jv] = jvp(f, {x}, {rnd({2}, 36)});
  CHECK(max_diff(jv[0], zeros({3}, float64)) == 0.0);
  // A linear function has a zero Hessian.
  Tensor H = hessian([](const Tensor& t) { return mul(sum(t), 3.0); }, x);
  CHECK(max_diff(H, zeros({2, 2}, float64)) == 0.0);
}

TEST_CASE("bad arguments raise the project's errors, naming the call and the shapes") {
  Tensor x = rnd({2, 3}, 37);
  auto f = [](const TensorList& t) { return TensorList{mul(t[0], 2.0)}; };
  auto s = [](const TensorList& t) { return sum(square(t[0])); };
  // Directions of the wrong shape, count or dtype.
  CHECK_THROWS_WITH_PARTS(jvp(f, {x}, {rnd({3, 2}, 1)}), ShapeError, "jvp", "v[0]", "[3, 2]",
                          "input 0", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(jvp(f, {x}, {x, x}), ShapeError, "jvp", "2 tensors", "1 input");
  CHECK_THROWS_WITH_PARTS(jvp(f, {x}, {x.to(float32)}), DtypeError, "jvp", "float32", "float64");
  CHECK_THROWS_WITH_PARTS(jvp(f, {x}), ShapeError, "jvp", "one-element", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(vjp(f, {x}, {rnd({6}, 1)}), ShapeError, "vjp", "u[0]", "[6]", "output 0",
                          "[2, 3]");
  CHECK_THROWS_WITH_PARTS(vjp(f, {x}), ShapeError, "vjp", "u may be left out");
  CHECK_THROWS_WITH_PARTS(hvp(ScalarFn(s), {x}, {rnd({3}, 1)}), ShapeError, "hvp", "v[0]", "[3]");
  CHECK_THROWS_WITH_PARTS(vhp(ScalarFn(s), {x}, {}), ShapeError, "vhp", "v may be left out");
  CHECK_THROWS_WITH_PARTS(jvp([](const Tensor& t) { return t; }, x, rnd({3}, 1)), ShapeError, "jvp",
                          "[3]", "[2, 3]");
  // The objective of hessian / hvp / vhp must be a single one-element tensor.
  CHECK_THROWS_WITH_PARTS(hessian([](const Tensor& t) { return mul(t, 2.0); }, x), ShapeError,
                          "hessian", "one-element", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(hessian(TensorFn([](const TensorList& t) {
                                    return TensorList{sum(t[0]), sum(t[0])};
                                  }),
                                  {x}),
                          ShapeError, "hessian", "2 outputs");
  CHECK_THROWS_WITH_PARTS(hvp(TensorFn(f), {x}, {x}), ShapeError, "hvp", "[2, 3]");
  // Inputs: not floating, undefined, none.
  Tensor labels = arange(int64_t{3}, int64);
  CHECK_THROWS_WITH_PARTS(jacobian([](const Tensor& t) { return t; }, labels), DtypeError,
                          "jacobian", "input 0", "int64", "[3]");
  CHECK_THROWS_WITH_PARTS(hessian(ScalarFn(s), {Tensor()}), ValueError, "hessian", "undefined");
  CHECK_THROWS_WITH_PARTS(jacobian(f, {}), ValueError, "jacobian", "no inputs");
  // Outputs: none, undefined, not floating.
  CHECK_THROWS_WITH_PARTS(jacobian([](const TensorList&) { return TensorList{}; }, {x}), ValueError,
                          "jacobian", "no outputs");
  CHECK_THROWS_WITH_PARTS(vjp([](const TensorList&) { return TensorList{Tensor()}; }, {x}),
                          ValueError, "vjp", "output 0", "undefined");
  CHECK_THROWS_WITH_PARTS(
      jacobian([](const Tensor& t) { return gt(t, scalar_tensor(0.0, float64)); }, x), DtypeError,
      "jacobian", "output 0", "bool");
}
