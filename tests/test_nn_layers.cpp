// Layers: every module's derivatives in float64 (through Module::to(float64)), with respect to its
// input and to its parameters; values by hand; Dropout's modes and seeding; default initialisation
// against PyTorch's formulas; nn::init.
//
// How parameters are checked: gradcheck perturbs its own copies of its inputs, so a module's
// parameters cannot simply be passed to it. Instead check_parameter_jacobian builds the Jacobian of
// the output with respect to every parameter twice: by backward (ag::grad, one output element at a
// time) and by central differences, perturbing each parameter element in place and running the
// module again. Second derivatives through the parameters are covered by gradchecking
// x -> d<v, module(x)>/d(parameters), computed with create_graph.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include "nn/nn.h"
#include "support.h"

using namespace ag;
using test::leaf;

namespace {

constexpr double kEps = 1e-6, kAtol = 1e-5, kRtol = 1e-3;  // gradcheck's defaults

// The trainable parameters of a module, with their names.
std::vector<std::pair<std::string, Tensor>> trainable(nn::Module& m) {
  std::vector<std::pair<std::string, Tensor>> r;
  for (auto& [n, p] : m.named_parameters())
    if (p.requires_grad()) r.emplace_back(n, p);
  return r;
}

std::vector<double> run_detached(nn::Module& m, const Tensor& x) {
  NoGradGuard ng;
  return m(x).to(float64).contiguous().to_vector<double>();
}

// d m(x) / d p for every trainable parameter p: backward against central differences.
void check_parameter_jacobian(nn::Module& m, const Tensor& x) {
  auto params = trainable(m);
  REQUIRE_FALSE(params.empty());
  TensorList ps;
  for (auto& [_, p] : params) {
    REQUIRE(p.dtype() == float64);
    REQUIRE(p.is_contiguous());
    ps.push_back(p);
  }
  Tensor y = m(x);
  REQUIRE(y.dtype() == float64);
  // analytic[k][r][e] = d y[r] / d params[k][e]
  std::vector<std::vector<std::vector<double>>> analytic(ps.size());
  for (int64_t r = 0; r < y.numel(); ++r) {
    Tensor v = zeros(y.shape(), float64);
    v.data<double>()[r] = 1.0;
    TensorList g = ag::grad({y}, ps, {v}, /*retain_graph=*/true, false, /*allow_unused=*/true);
    for (size_t k = 0; k < ps.size(); ++k)
      analytic[k].push_back(g[k].defined() ? g[k].contiguous().to_vector<double>()
                                           : std::vector<double>(ps[k].numel(), 0.0));
  }
  for (size_t k = 0; k < ps.size(); ++k) {
    double* data = ps[k].data<double>();
    double worst = 0;
    std::string where;
    for (int64_t e = 0; e < ps[k].numel(); ++e) {
      double original = data[e];
      data[e] = original + kEps;
      auto plus = run_detached(m, x);
      data[e] = original - kEps;
      auto minus = run_detached(m, x);
      data[e] = original;
      for (int64_t r = 0; r < y.numel(); ++r) {
        double numeric = (plus[r] - minus[r]) / (2 * kEps), a = analytic[k][r][e];
        double excess = std::abs(a - numeric) / (kAtol + kRtol * std::abs(numeric));
        if (!(excess <= worst)) {
          worst = excess;
          where = fmt::format("d out[{}] / d {}[{}]: analytic {}, numeric {}", r, params[k].first,
                              e, a, numeric);
        }
      }
    }
    INFO("parameter " << params[k].first << ", worst entry " << where);
    CHECK(worst <= 1.0);
  }
}

// The parameters' gradients are differentiable functions of the input (double backward through
// every parameter path): gradcheck x -> d<v, m(x)>/d(parameters).
void check_parameter_second_order(nn::Module& m, const Tensor& x) {
  TensorList ps;
  for (auto& [_, p] : trainable(m)) ps.push_back(p);
  Generator gen(3);
  Tensor v = randn(m(x.detach()).shape(), float64, &gen);
  TensorFn f = [&m, ps, v](const TensorList& in) {
    Tensor y = m(in[0]);
    return ag::grad({(y * v).sum()}, ps, {}, false, /*create_graph=*/true, /*allow_unused=*/true);
  };
  auto report = gradcheck(f, {x.detach().requires_grad_()});
  INFO(report.to_string());
  CHECK(report.ok);
  CHECK(report.checked > 0);
}

// Everything above plus gradcheck and gradgradcheck with respect to the input.
void check_module_gradients(nn::Module& m, const Tensor& x) {
  REQUIRE(x.dtype() == float64);
  test::check_gradients([&m](const TensorList& in) { return m(in[0]); },
                        {x.detach().requires_grad_()});
  if (!trainable(m).empty()) {
    check_parameter_jacobian(m, x.detach());
    check_parameter_second_order(m, x);
  }
}

// Random values for every parameter (so no gradient is trivially zero or one), float64.
void randomize(nn::Module& m, uint64_t seed) {
  m.to(float64);
  Generator gen(seed);
  for (Tensor& p : m.parameters()) nn::init::uniform_(p, -1.0, 1.0, &gen);
}

double mean_of(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}
double variance_of(const std::vector<double>& v) {
  double m = mean_of(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / static_cast<double>(v.size());
}
double max_abs(const std::vector<double>& v) {
  double r = 0;
  for (double x : v) r = std::max(r, std::abs(x));
  return r;
}

}  // namespace

// ---- Linear ----

TEST_CASE("Linear computes x W^T + b") {
  nn::Linear lin(3, 2);
  {
    NoGradGuard ng;
    lin.weight.copy_(Tensor({{1.0, 2.0, 3.0}, {-1.0, 0.5, 0.0}}));
    lin.bias.copy_(Tensor({0.5, -2.0}));
  }
  Tensor y = lin(Tensor({{1.0, 1.0, 1.0}, {2.0, 0.0, -1.0}}));
  CHECK(y.shape() == Shape{2, 2});
  CHECK(y.to_vector<float>() == std::vector<float>{6.5f, -2.5f, -0.5f, -4.0f});
  // Leading axes pass through.
  CHECK(lin(zeros({4, 5, 3})).shape() == Shape{4, 5, 2});
  CHECK(lin.in_features == 3);
  CHECK(lin.out_features == 2);
}

TEST_CASE("Linear without bias has only a weight") {
  nn::Linear lin(3, 2, /*bias=*/false);
  CHECK_FALSE(lin.bias.defined());
  CHECK(lin.parameters().size() == 1);
  CHECK(lin.named_parameters()[0].first == "weight");
  Tensor x = Tensor({{1.0, -1.0, 2.0}});
  CHECK(test::allclose(lin(x), matmul(x, lin.weight.t())));
}

TEST_CASE("Linear gradients (input and parameters, first and second order)") {
  nn::Linear lin(3, 2);
  randomize(lin, 1);
  check_module_gradients(lin, leaf({4, 3}, -1.0, 1.0, 2));
  // Extra leading axes: the weight gradient sums over all of them.
  check_module_gradients(lin, leaf({2, 2, 3}, -1.0, 1.0, 3));
}

TEST_CASE("Linear without bias: gradients") {
  nn::Linear lin(4, 3, false);
  randomize(lin, 4);
  check_module_gradients(lin, leaf({2, 4}, -1.0, 1.0, 5));
}

TEST_CASE("Linear errors") {
  nn::Linear lin(3, 2);
  CHECK_THROWS_WITH_PARTS(lin(zeros({2, 4})), ShapeError, "linear", "[2, 4]", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(nn::Linear(0, 2), ValueError, "Linear", "positive");
}

// ---- LayerNorm ----

TEST_CASE("LayerNorm module: weight 1, bias 0 at first, so it starts as plain normalization") {
  nn::LayerNorm ln(4);
  CHECK(ln.weight.to_vector<float>() == std::vector<float>{1, 1, 1, 1});
  CHECK(ln.bias.to_vector<float>() == std::vector<float>{0, 0, 0, 0});
  CHECK(ln.normalized_shape == Shape{4});
  Tensor x = Tensor({{1.0, 2.0, 3.0, 6.0}});
  CHECK(test::allclose(ln(x), layer_norm(x, {4}), 0, 0));
  // Each row ends with mean 0 and (biased) variance 1 (up to eps).
  Tensor y = ln(leaf({5, 4}, -3.0, 3.0, 6).detach());
  CHECK(test::allclose(mean(y, {1}), zeros({5}, float64), 1e-6));
  CHECK(test::allclose(var(y, {1}, 0), ones({5}, float64), 1e-3));
}

TEST_CASE("LayerNorm gradients: with affine parameters, over one and two axes, without them") {
  nn::LayerNorm ln(4);
  randomize(ln, 7);
  check_module_gradients(ln, leaf({3, 4}, -1.0, 1.0, 8));
  nn::LayerNorm ln2(Shape{2, 3});
  randomize(ln2, 9);
  check_module_gradients(ln2, leaf({2, 2, 3}, -1.0, 1.0, 10));
  nn::LayerNorm plain(Shape{4}, 1e-5, /*elementwise_affine=*/false);
  CHECK(plain.parameters().empty());
  plain.to(float64);
  check_module_gradients(plain, leaf({3, 4}, -1.0, 1.0, 11));
}

TEST_CASE("LayerNorm errors") {
  nn::LayerNorm ln(4);
  CHECK_THROWS_WITH_PARTS(ln(zeros({2, 3})), ShapeError, "LayerNorm", "[2, 3]", "[4]");
  CHECK_THROWS_WITH_PARTS(nn::LayerNorm(Shape{}), ValueError, "LayerNorm", "normalized_shape");
}

// ---- Embedding ----

TEST_CASE("Embedding looks rows up; repeated indices accumulate gradient") {
  nn::Embedding emb(5, 3);
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{4, 0, 4, 2}, {2, 2});
  Tensor y = emb(idx);
  CHECK(y.shape() == Shape{2, 2, 3});
  CHECK(test::allclose(y[0][0], emb.weight[4], 0, 0));
  CHECK(test::allclose(y[1][1], emb.weight[2], 0, 0));
  y.sum().backward();
  Tensor g = emb.weight.grad();
  CHECK(g[4].to_vector<float>() == std::vector<float>{2, 2, 2});
  CHECK(g[0].to_vector<float>() == std::vector<float>{1, 1, 1});
  CHECK(g[1].to_vector<float>() == std::vector<float>{0, 0, 0});
  CHECK(g[3].to_vector<float>() == std::vector<float>{0, 0, 0});
}

TEST_CASE("Embedding gradient with respect to the table") {
  nn::Embedding emb(5, 3);
  emb.to(float64);
  check_parameter_jacobian(emb, Tensor::from_vector(std::vector<int64_t>{1, 3, 1, 0, 4}, {5}));
  check_parameter_jacobian(emb, Tensor::from_vector(std::vector<int64_t>{2, 2, 0, 1}, {2, 2}));
}

TEST_CASE("Embedding errors") {
  nn::Embedding emb(5, 3);
  CHECK_THROWS_AS(emb(Tensor::from_vector(std::vector<int64_t>{5})), IndexError);
  CHECK_THROWS_WITH_PARTS(nn::Embedding(0, 3), ValueError, "Embedding", "positive");
}

// ---- activations ----

TEST_CASE("activation modules compute their functions") {
  Tensor x = Tensor({-2.0, -0.5, 0.5, 2.0}).to(float64);
  std::vector<double> xs = x.to_vector<double>();
  auto apply = [&](nn::Module& m) { return m(x).to_vector<double>(); };
  nn::ReLU relu_m;
  nn::LeakyReLU leaky(0.1);
  nn::Tanh tanh_m;
  nn::Sigmoid sigmoid_m;
  nn::SiLU silu_m;
  nn::GELU gelu_m, gelu_tanh("tanh");
  auto r = apply(relu_m), l = apply(leaky), t = apply(tanh_m), s = apply(sigmoid_m),
       si = apply(silu_m), g = apply(gelu_m), gt = apply(gelu_tanh);
  for (size_t i = 0; i < xs.size(); ++i) {
    double v = xs[i], sig = 1 / (1 + std::exp(-v));
    CHECK(r[i] == doctest::Approx(std::max(v, 0.0)));
    CHECK(l[i] == doctest::Approx(v > 0 ? v : 0.1 * v));
    CHECK(t[i] == doctest::Approx(std::tanh(v)));
    CHECK(s[i] == doctest::Approx(sig));
    CHECK(si[i] == doctest::Approx(v * sig));
    CHECK(g[i] == doctest::Approx(0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))));
    double u = std::sqrt(2 / std::numbers::pi) * (v + 0.044715 * v * v * v);
    CHECK(gt[i] == doctest::Approx(0.5 * v * (1 + std::tanh(u))));
  }
  nn::Softmax softmax_m;
  auto p = apply(softmax_m);
  double z = 0;
  for (double v : xs) z += std::exp(v);
  for (size_t i = 0; i < xs.size(); ++i) CHECK(p[i] == doctest::Approx(std::exp(xs[i]) / z));
}

TEST_CASE("activation modules: gradients (inputs away from kinks)") {
  Tensor x = leaf({3, 4}, 0.1, 1.0, 12);
  Tensor sign = Tensor::from_vector(std::vector<double>{1, -1, 1, -1}, {4});
  Tensor xs = (x.detach() * sign).detach();  // |x| >= 0.1: no element at the kink of relu
  std::vector<std::shared_ptr<nn::Module>> modules = {
      std::make_shared<nn::ReLU>(),     std::make_shared<nn::LeakyReLU>(0.2),
      std::make_shared<nn::Tanh>(),     std::make_shared<nn::Sigmoid>(),
      std::make_shared<nn::GELU>(),     std::make_shared<nn::GELU>("tanh"),
      std::make_shared<nn::SiLU>(),     std::make_shared<nn::Softmax>(),
      std::make_shared<nn::Softmax>(0), std::make_shared<nn::Identity>()};
  for (auto& m : modules) {
    INFO(m->type_name());
    CHECK(m->parameters().empty());
    check_module_gradients(*m, xs);
  }
}

TEST_CASE("make_activation builds modules by name") {
  CHECK(nn::make_activation("relu")->type_name() == "ReLU");
  CHECK(nn::make_activation("leaky_relu")->type_name() == "LeakyReLU");
  CHECK(nn::make_activation("tanh")->type_name() == "Tanh");
  CHECK(nn::make_activation("sigmoid")->type_name() == "Sigmoid");
  CHECK(nn::make_activation("gelu")->type_name() == "GELU");
  CHECK(std::dynamic_pointer_cast<nn::GELU>(nn::make_activation("gelu_tanh"))->approximate ==
        "tanh");
  CHECK(nn::make_activation("silu")->type_name() == "SiLU");
  CHECK(nn::make_activation("identity")->type_name() == "Identity");
  CHECK_THROWS_WITH_PARTS(nn::make_activation("swish"), ValueError, "make_activation", "swish");
}

// ---- containers ----

TEST_CASE("Sequential gradients through every layer's parameters") {
  nn::Sequential seq{std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::Tanh>(),
                     std::make_shared<nn::LayerNorm>(4), std::make_shared<nn::Linear>(4, 2)};
  randomize(seq, 13);
  check_module_gradients(seq, leaf({3, 3}, -1.0, 1.0, 14));
}

TEST_CASE("make_mlp: Linear layers with the activation between them, none after the last") {
  auto mlp = nn::make_mlp({3, 5, 4, 2}, "tanh");
  REQUIRE(mlp->size() == 5);
  CHECK((*mlp)[0]->type_name() == "Linear");
  CHECK((*mlp)[1]->type_name() == "Tanh");
  CHECK((*mlp)[2]->type_name() == "Linear");
  CHECK((*mlp)[3]->type_name() == "Tanh");
  CHECK((*mlp)[4]->type_name() == "Linear");
  CHECK(mlp->num_parameters() == (3 * 5 + 5) + (5 * 4 + 4) + (4 * 2 + 2));
  auto with_dropout = nn::make_mlp({3, 5, 2}, "relu", 0.3);
  REQUIRE(with_dropout->size() == 4);
  CHECK((*with_dropout)[2]->type_name() == "Dropout");
  CHECK_THROWS_WITH_PARTS(nn::make_mlp({3}), ValueError, "make_mlp");
}

TEST_CASE("Sequential runs a Linear followed by a ReLU as linear_relu, with the same results") {
  // The fused pair against the layers applied one by one; a LoRA adapter on a Linear leaves it
  // unfused (relu of the adapted output).
  auto mlp = nn::make_mlp({6, 8, 7, 3}, "relu");
  randomize(*mlp, 31);
  Tensor x = leaf({5, 6}, -1.0, 1.0, 32);
  Tensor fused = mlp->forward(x);
  CHECK(fused.grad_fn()->name() == "linear");
  Tensor h = x;
  for (size_t i = 0; i < mlp->size(); ++i) h = (*mlp)[i]->forward(h);
  CHECK(test::allclose(fused, h, 1e-14, 0));
  Tensor hidden = (*mlp)[0]->forward(x);
  CHECK(hidden.grad_fn()->name() == "linear");
  CHECK(std::dynamic_pointer_cast<nn::Linear>((*mlp)[0])->forward_relu(x).grad_fn()->name() ==
        "linear_relu");
  auto params = mlp->parameters();
  TensorList a = grad({fused.sum()}, params), b = grad({h.sum()}, params);
  for (size_t k = 0; k < params.size(); ++k) CHECK(test::allclose(a[k], b[k], 1e-14, 0));
  check_module_gradients(*mlp, leaf({2, 6}, -1.0, 1.0, 33));
}

TEST_CASE("MLP gradients (tanh and gelu), and with dropout in eval mode") {
  auto mlp = nn::make_mlp({3, 5, 4, 2}, "tanh");
  randomize(*mlp, 15);
  check_module_gradients(*mlp, leaf({2, 3}, -1.0, 1.0, 16));
  auto gelu = nn::make_mlp({2, 4, 3}, "gelu");
  randomize(*gelu, 17);
  check_module_gradients(*gelu, leaf({3, 2}, -1.0, 1.0, 18));
  auto dropped = nn::make_mlp({2, 4, 3}, "silu", 0.5);
  randomize(*dropped, 19);
  dropped->eval();
  check_module_gradients(*dropped, leaf({3, 2}, -1.0, 1.0, 20));
}

// ---- Dropout ----

TEST_CASE("Dropout in training zeroes about p of the elements and scales the rest by 1/(1-p)") {
  nn::Dropout drop(0.25, 7);
  Tensor y = drop(ones({4000}));
  auto v = y.to_vector<float>();
  int64_t zeros_count = 0, others = 0;
  for (float e : v) {
    zeros_count += e == 0.0f;
    others += e != 0.0f && e != doctest::Approx(1 / 0.75);
  }
  CHECK(others == 0);
  CHECK(static_cast<double>(zeros_count) / 4000 == doctest::Approx(0.25).epsilon(0.1));
  // d y / d x = mask / (1 - p): for x = 1 that is y itself.
  Tensor x = ones({50}).requires_grad_();
  Tensor out = drop(x);
  out.sum().backward();
  CHECK(test::allclose(x.grad(), out.detach(), 0, 0));
}

TEST_CASE("Dropout is the identity in eval mode and for p = 0") {
  nn::Dropout drop(0.5, 1);
  Tensor x = leaf({10}, -1.0, 1.0, 21).detach();
  drop.eval();
  CHECK(test::allclose(drop(x), x, 0, 0));
  drop.train();
  CHECK_FALSE(test::allclose(drop(x), x));
  nn::Dropout none(0.0, 1);
  CHECK(test::allclose(none(x), x, 0, 0));
  // Inside a model, eval() reaches the dropout layer.
  auto mlp = nn::make_mlp({10, 10}, "relu");
  nn::Sequential seq{std::make_shared<nn::Dropout>(0.5, 3), mlp};
  seq.eval();
  Tensor a = seq(x.to(float32)), b = seq(x.to(float32));
  CHECK(test::allclose(a, b, 0, 0));
  CHECK(test::allclose(a, (*mlp)(x.to(float32)), 0, 0));
}

TEST_CASE("Dropout is seeded: the same seed gives the same masks, in the same order") {
  nn::Dropout a(0.5, 42), b(0.5, 42), c(0.5, 43);
  Tensor x = ones({64});
  Tensor a1 = a(x), a2 = a(x), b1 = b(x), b2 = b(x), c1 = c(x);
  CHECK(test::allclose(a1, b1, 0, 0));
  CHECK(test::allclose(a2, b2, 0, 0));
  CHECK_FALSE(test::allclose(a1, a2));  // each call draws a new mask
  CHECK_FALSE(test::allclose(a1, c1));
  // Without a seed, the seed comes from the default generator: reproducible after manual_seed.
  manual_seed(5);
  nn::Dropout d1(0.5);
  manual_seed(5);
  nn::Dropout d2(0.5);
  CHECK(test::allclose(d1(x), d2(x), 0, 0));
  CHECK_THROWS_WITH_PARTS(nn::Dropout(1.5), ValueError, "Dropout", "1.5");
}

// ---- initialisation ----

TEST_CASE("Linear default init is PyTorch's: W and b uniform in +-1/sqrt(in_features)") {
  Generator gen(1);
  nn::Linear lin(200, 100, true, &gen);
  double bound = 1 / std::sqrt(200.0);
  auto w = lin.weight.to_vector<float>();
  std::vector<double> wd(w.begin(), w.end());
  CHECK(max_abs(wd) <= bound);
  CHECK(max_abs(wd) > 0.99 * bound);
  CHECK(std::abs(mean_of(wd)) < 0.002);
  CHECK(variance_of(wd) == doctest::Approx(bound * bound / 3).epsilon(0.05));
  auto b = lin.bias.to_vector<float>();
  std::vector<double> bd(b.begin(), b.end());
  CHECK(max_abs(bd) <= bound);
  CHECK(max_abs(bd) > 0.8 * bound);
  // The same generator state gives the same layer.
  Generator g1(9), g2(9);
  nn::Linear l1(4, 3, true, &g1), l2(4, 3, true, &g2);
  CHECK(test::allclose(l1.weight, l2.weight, 0, 0));
  CHECK(test::allclose(l1.bias, l2.bias, 0, 0));
}

TEST_CASE("Embedding default init is N(0, 1)") {
  Generator gen(2);
  nn::Embedding emb(500, 40, &gen);
  auto w = emb.weight.to_vector<float>();
  std::vector<double> wd(w.begin(), w.end());
  CHECK(std::abs(mean_of(wd)) < 0.02);
  CHECK(std::sqrt(variance_of(wd)) == doctest::Approx(1.0).epsilon(0.02));
}

TEST_CASE("nn::init: fans, gains and the bounds and spreads of each scheme") {
  CHECK(nn::init::fans(zeros({30, 20})) == std::pair<int64_t, int64_t>{20, 30});
  CHECK(nn::init::fans(zeros({8, 4, 3, 3})) == std::pair<int64_t, int64_t>{36, 72});
  CHECK_THROWS_WITH_PARTS(nn::init::fans(zeros({5})), ShapeError, "fan", "[5]");
  CHECK(nn::init::calculate_gain("linear") == 1.0);
  CHECK(nn::init::calculate_gain("sigmoid") == 1.0);
  CHECK(nn::init::calculate_gain("tanh") == doctest::Approx(5.0 / 3));
  CHECK(nn::init::calculate_gain("relu") == doctest::Approx(std::sqrt(2.0)));
  CHECK(nn::init::calculate_gain("leaky_relu", 0.2) == doctest::Approx(std::sqrt(2 / 1.04)));
  CHECK_THROWS_WITH_PARTS(nn::init::calculate_gain("swish"), ValueError, "swish");

  Generator gen(4);
  auto stats = [](const Tensor& t) {
    auto v = t.to_vector<double>();
    return std::pair{max_abs(v), std::sqrt(variance_of(v))};
  };
  Tensor w = zeros({300, 200}, float64);  // fan_in 200, fan_out 300
  nn::init::xavier_uniform_(w, 1.0, &gen);
  double b = std::sqrt(6.0 / 500);
  CHECK(stats(w).first <= b);
  CHECK(stats(w).first > 0.99 * b);
  nn::init::xavier_normal_(w, 2.0, &gen);
  CHECK(stats(w).second == doctest::Approx(2.0 * std::sqrt(2.0 / 500)).epsilon(0.02));
  nn::init::kaiming_uniform_(w, 0.0, "fan_in", "relu", &gen);
  b = std::sqrt(2.0) * std::sqrt(3.0 / 200);
  CHECK(stats(w).first <= b);
  CHECK(stats(w).first > 0.99 * b);
  nn::init::kaiming_normal_(w, 0.0, "fan_out", "relu", &gen);
  CHECK(stats(w).second == doctest::Approx(std::sqrt(2.0) / std::sqrt(300.0)).epsilon(0.02));
  CHECK_THROWS_WITH_PARTS(nn::init::kaiming_uniform_(w, 0.0, "fan_middle"), ValueError,
                          "fan_middle");
  nn::init::normal_(w, 3.0, 0.5, &gen);
  CHECK(mean_of(w.to_vector<double>()) == doctest::Approx(3.0).epsilon(0.01));
  nn::init::uniform_(w, 2.0, 5.0, &gen);
  auto v = w.to_vector<double>();
  CHECK(*std::min_element(v.begin(), v.end()) >= 2.0);
  CHECK(*std::max_element(v.begin(), v.end()) < 5.0);
  nn::init::constant_(w, 0.25);
  CHECK(max_abs(w.to_vector<double>()) == 0.25);
  nn::init::zeros_(w);
  CHECK(max_abs(w.to_vector<double>()) == 0.0);
  nn::init::ones_(w);
  CHECK(mean_of(w.to_vector<double>()) == 1.0);
  // In place, also on parameters that require grad (no graph is recorded).
  Tensor p = zeros({3, 3}).requires_grad_();
  nn::init::xavier_uniform_(p);
  CHECK(p.is_leaf());
  CHECK(max_abs(p.detach().to(float64).to_vector<double>()) > 0);
}
