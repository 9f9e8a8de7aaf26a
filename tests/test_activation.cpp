// Activations: values against hand computations, derivatives at chosen points, first and second
// derivatives (float64 gradcheck and gradgradcheck, away from kinks), stability and errors.
#include <cmath>

#include "support.h"

using namespace ag;
using test::all_finite;
using test::check_gradients;
using test::check_values;
using test::f64;

namespace {

// Inputs away from 0 (the kink of relu, leaky_relu and elu).
Tensor away_from_zero() {
  return f64({-1.5, -0.3, 0.4, 0.9, -2.0, 1.7}).reshape({2, 3}).detach().requires_grad_();
}

// d activation / dx at each element of x, via backward.
Tensor derivative(Tensor (*f)(const Tensor&), const Tensor& x) {
  Tensor xl = x.detach().requires_grad_();
  f(xl).sum().backward();
  return xl.grad();
}

double sigmoid_of(double x) { return 1 / (1 + std::exp(-x)); }

}  // namespace

TEST_CASE("relu: max(x, 0), derivative [x > 0]") {
  check_values(relu(f64({-1.0, 2.0, -0.5, 3.0})), {0, 2, 0, 3});
  check_values(derivative(relu, f64({-1.0, 2.0, -0.5, 3.0})), {0, 1, 0, 1});
  CHECK(relu(Tensor({-1.0, 2.0})).dtype() == float32);
  check_gradients([](const TensorList& a) { return relu(a[0]); }, {away_from_zero()});
}

TEST_CASE("leaky_relu: x or slope x, derivative 1 or slope") {
  check_values(leaky_relu(f64({-2.0, 3.0}), 0.1), {-0.2, 3.0});
  check_values(leaky_relu(f64({-2.0})), {-0.02});  // default slope 0.01
  Tensor x = f64({-2.0, 3.0}).requires_grad_();
  leaky_relu(x, 0.1).sum().backward();
  check_values(x.grad(), {0.1, 1.0});
  check_gradients([](const TensorList& a) { return leaky_relu(a[0], 0.2); }, {away_from_zero()});
}

TEST_CASE("elu: x or alpha (e^x - 1), derivative 1 or out + alpha") {
  check_values(elu(f64({-1.0, 2.0}), 2.0), {2.0 * (std::exp(-1.0) - 1.0), 2.0});
  Tensor x = f64({-1.0, 2.0}).requires_grad_();
  elu(x, 2.0).sum().backward();
  check_values(x.grad(), {2.0 * std::exp(-1.0), 1.0});
  check_gradients([](const TensorList& a) { return elu(a[0]); }, {away_from_zero()});
  check_gradients([](const TensorList& a) { return elu(a[0], 0.5); }, {away_from_zero()});
}

TEST_CASE("gelu (erf form): x Phi(x), derivative Phi(x) + x phi(x)") {
  check_values(gelu(f64({1.0, -1.0, 0.0})), {0.8413447460685429, -0.15865525393145707, 0.0});
  // Phi(1) + phi(1) = 0.8413447460685429 + 0.24197072451914337.
  check_values(derivative([](const Tensor& x) { return gelu(x); }, f64({1.0})),
               {1.0833154705876862});
  check_gradients([](const TensorList& a) { return gelu(a[0]); },
                  {test::leaf({2, 3}, -3.0, 3.0, 1)});
}

TEST_CASE("gelu (tanh form): 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))") {
  check_values(gelu(f64({1.0, -0.5}), "tanh"), {0.8411919906082768, -0.15428599017485606});
  // It stays close to the erf form.
  Tensor x = test::leaf({50}, -4.0, 4.0, 2).detach();
  CHECK(test::allclose(gelu(x, "tanh"), gelu(x), 1e-3, 0));
  check_gradients([](const TensorList& a) { return gelu(a[0], "tanh"); },
                  {test::leaf({2, 3}, -3.0, 3.0, 3)});
}

TEST_CASE("gelu_backward: the fused g * gelu'(x), itself differentiable in g and x") {
  for (const char* form : {"none", "tanh"}) {
    INFO("approximate = " << form);
    // Against the derivative of the forward, on a SIMD-sized tensor with a scalar tail (37 values)
    // in float32 and float64.
    for (Dtype d : {float64, float32}) {
      Tensor x = test::leaf({37}, -5.0, 5.0, 7).detach().to(d).requires_grad_();
      Tensor g = test::leaf({37}, -1.0, 1.0, 8).detach().to(d);
      gelu(x, form).backward(g);
      CHECK(test::allclose(gelu_backward(g, x.detach(), form), x.grad(), 1e-6, 1e-5));
    }
    // A strided (transposed) input gives the same values as a contiguous one.
    Tensor xt = test::leaf({3, 5}, -3.0, 3.0, 9).detach();
    Tensor gt = test::leaf({5, 3}, -1.0, 1.0, 10).detach();
    CHECK(test::allclose(gelu_backward(gt, xt.t(), form),
                         gelu_backward(gt, xt.t().contiguous(), form), 1e-14, 0));
    check_gradients([form](const TensorList& a) { return gelu_backward(a[0], a[1], form); },
                    {test::leaf({2, 3}, -1.0, 1.0, 11), test::leaf({2, 3}, -3.0, 3.0, 12)});
  }
  CHECK_THROWS_WITH_PARTS(gelu_backward(zeros({2, 3}), zeros({3, 2})), ShapeError, "gelu_backward",
                          "[2, 3]", "[3, 2]");
  CHECK_THROWS_WITH_PARTS(gelu(zeros({2}), "fast"), ValueError, "gelu", "fast");
}

TEST_CASE("silu: x sigmoid(x), derivative s (1 + x (1 - s))") {
  check_values(silu(f64({1.0, -2.0})), {0.7310585786300049, -0.2384058440442351});
  check_values(derivative(silu, f64({1.0})), {0.9276705118714869});
  check_gradients([](const TensorList& a) { return silu(a[0]); },
                  {test::leaf({2, 3}, -4.0, 4.0, 4)});
}

TEST_CASE("softplus: log(1 + e^(beta x)) / beta, linear above the threshold") {
  check_values(softplus(f64({0.0})), {std::log(2.0)});
  check_values(softplus(f64({0.3}), 2.0), {0.5187439752429428});
  check_values(softplus(f64({30.0, 21.0})), {30.0, 21.0});  // beta x > 20: exactly x
  // With beta = 2 and threshold 1, x = 0.8 is in the linear part (beta x = 1.6).
  check_values(softplus(f64({0.8}), 2.0, 1.0), {0.8});
  Tensor x = f64({0.3, 0.8}).requires_grad_();
  softplus(x, 2.0, 1.0).sum().backward();
  check_values(x.grad(), {sigmoid_of(0.6), 1.0});
  check_gradients([](const TensorList& a) { return softplus(a[0]); },
                  {test::leaf({2, 3}, -5.0, 5.0, 5)});
  // Both parts, away from the threshold: beta x = -2, 0.4 | 3, 3.4.
  check_gradients([](const TensorList& a) { return softplus(a[0], 2.0, 1.0); },
                  {f64({-1.0, 0.2, 1.5, 1.7}).requires_grad_()});
}

TEST_CASE("activations stay finite (and right) for large inputs") {
  Tensor big = f64({-1e4, -1000.0, 1000.0, 1e4});
  // A huge threshold makes softplus use its log1p form everywhere: still no overflow.
  check_values(softplus(big, 1.0, 1e9), {0.0, 0.0, 1000.0, 1e4});
  check_values(silu(big), {0.0, 0.0, 1000.0, 1e4});
  check_values(gelu(big), {0.0, 0.0, 1000.0, 1e4});
  check_values(gelu(big, "tanh"), {0.0, 0.0, 1000.0, 1e4});
  check_values(elu(big), {-1.0, -1.0, 1000.0, 1e4});
  for (auto f : {+[](const Tensor& x) { return silu(x); },
                 +[](const Tensor& x) { return softplus(x, 1.0, 1e9); },
                 +[](const Tensor& x) { return gelu(x); },
                 +[](const Tensor& x) { return gelu(x, "tanh"); }}) {
    CHECK(all_finite(derivative(f, big)));
    CHECK(all_finite(derivative(f, big.to(float32))));
  }
}

TEST_CASE("float32 activations agree with float64") {
  Tensor x = test::leaf({20}, -3.0, 3.0, 6).detach();
  for (auto f :
       {+[](const Tensor& t) { return relu(t); }, +[](const Tensor& t) { return leaky_relu(t); },
        +[](const Tensor& t) { return elu(t); }, +[](const Tensor& t) { return gelu(t); },
        +[](const Tensor& t) { return gelu(t, "tanh"); }, +[](const Tensor& t) { return silu(t); },
        +[](const Tensor& t) { return softplus(t); }}) {
    Tensor y32 = f(x.to(float32));
    CHECK(y32.dtype() == float32);
    CHECK(test::allclose(y32.to(float64), f(x), 1e-6, 1e-5));
  }
}

TEST_CASE("activation errors name the op") {
  CHECK_THROWS_WITH_PARTS(gelu(zeros({2}), "fast"), ValueError, "gelu", "fast", "none", "tanh");
  CHECK_THROWS_WITH_PARTS(softplus(zeros({2}), 0.0), ValueError, "softplus", "beta");
  Tensor i = zeros({2, 3}, int64);
  CHECK_THROWS_WITH_PARTS(relu(i), DtypeError, "relu", "int64");
  CHECK_THROWS_WITH_PARTS(leaky_relu(i), DtypeError, "leaky_relu", "int64");
  CHECK_THROWS_WITH_PARTS(elu(i), DtypeError, "elu", "int64");
  CHECK_THROWS_WITH_PARTS(gelu(i), DtypeError, "gelu", "int64");
  CHECK_THROWS_WITH_PARTS(silu(i), DtypeError, "silu", "int64");
  CHECK_THROWS_WITH_PARTS(softplus(i), DtypeError, "softplus", "int64");
}

TEST_CASE("check_tape replays and checks every activation node on its own") {
  auto fn = [](const TensorList& a) {
    Tensor x = a[0];
    Tensor y = add(add(relu(x), leaky_relu(x, 0.1)), elu(x));
    y = add(add(y, gelu(x)), gelu(x, "tanh"));
    return sum(add(add(y, silu(x)), softplus(x, 2.0)));
  };
  TapeReport r = check_tape(fn, {away_from_zero()});
  CHECK_MESSAGE(r.ok, r.to_string());
  CHECK(r.nodes_skipped == 0);
  CHECK(r.nodes_checked >= 7);
}

TEST_CASE("relu_backward: g where relu's output is positive, itself differentiable in g") {
  Tensor out = relu(Tensor::from_vector(std::vector<double>{-1, 0, 2, 3}));
  Tensor g = Tensor::from_vector(std::vector<double>{5, 6, 7, 8});
  CHECK(relu_backward(g, out).to_vector<double>() == std::vector<double>{0, 0, 7, 8});
  Tensor o2 = relu(test::leaf({2, 3}, -1, 1, 31).detach());
  check_gradients([o2](const TensorList& a) { return relu_backward(a[0], o2); },
                  {test::leaf({2, 3}, -1, 1, 32)});
  // Second derivative of a function through relu (x away from 0).
  Tensor x = Tensor::from_vector(std::vector<double>{-0.7, 0.4, 1.3}).requires_grad_();
  check_gradients([](const TensorList& a) { return relu(a[0]) * a[0]; }, {x});
  CHECK_THROWS_WITH_PARTS(relu_backward(zeros({2}), zeros({3})), ShapeError, "relu_backward", "[2]",
                          "[3]");
}

TEST_CASE(
    "softmax, log_softmax and exp on rows shorter than, equal to and longer than a register") {
  for (Dtype d : {float64, float32}) {
    for (int64_t c : {1, 2, 3, 7, 10, 15, 16, 17, 31, 33}) {
      CAPTURE(c);
      Tensor xd = test::leaf({3, c}, -30, 30, uint64_t(c)).detach().to(d);
      std::vector<double> v = test::values(xd), sm(v.size()), lsm(v.size()), e(v.size());
      for (int64_t r = 0; r < 3; ++r) {
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < c; ++j) m = std::max(m, v[r * c + j]);
        for (int64_t j = 0; j < c; ++j) s += std::exp(v[r * c + j] - m);
        for (int64_t j = 0; j < c; ++j) {
          sm[r * c + j] = std::exp(v[r * c + j] - m) / s;
          lsm[r * c + j] = v[r * c + j] - m - std::log(s);
          e[r * c + j] = std::exp(v[r * c + j] / 4);
        }
      }
      const double tol = d == float64 ? 1e-12 : 2e-6;
      CHECK(test::allclose(softmax(xd, -1), Tensor::from_vector(sm, {3, c}), tol, tol));
      CHECK(test::allclose(log_softmax(xd, -1), Tensor::from_vector(lsm, {3, c}), tol, tol));
      CHECK(test::allclose(exp(mul(xd, 0.25)), Tensor::from_vector(e, {3, c}), tol, tol));
    }
  }
}
