// Optimizers against their published update rules, computed by hand here step by step (SGD with
// momentum, dampening, nesterov and weight decay; Adam with bias correction, amsgrad and L2;
// AdamW's decoupled decay), parameter groups, optimizer state, learning-rate schedules and gradient
// clipping.
#include <cmath>
#include <numbers>

#include "nn/nn.h"
#include "support.h"

using namespace ag;

namespace {

// The test problem: loss = sum(a * (p - t)^2) for a two-element parameter, so the gradient is
// g = 2 a (p - t), elementwise; each element follows its own scalar sequence.
const std::vector<double> kA = {1.0, 3.0}, kT = {0.5, -1.0}, kP0 = {2.0, 1.5};

Tensor start_param() { return Tensor::from_vector(kP0).requires_grad_(); }

Tensor problem_loss(const Tensor& p) {
  Tensor a = Tensor::from_vector(kA), t = Tensor::from_vector(kT);
  return (a * (p - t) * (p - t)).sum();
}

double problem_grad(double p, size_t i) { return 2 * kA[i] * (p - kT[i]); }

// Runs `steps` optimizer steps on the test problem and checks the parameter after each one against
// `rule`, which advances the hand-computed state of element i by one step given its gradient.
template <class Rule>
void check_sequence(nn::Optimizer& opt, Tensor& p, int steps, Rule rule) {
  std::vector<double> expected = kP0;
  for (int s = 1; s <= steps; ++s) {
    opt.zero_grad();
    problem_loss(p).backward();
    opt.step();
    for (size_t i = 0; i < expected.size(); ++i)
      expected[i] = rule(i, expected[i], problem_grad(expected[i], i), s);
    auto got = p.to_vector<double>();
    for (size_t i = 0; i < expected.size(); ++i) {
      INFO("step " << s << ", element " << i);
      CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-12));
    }
  }
  CHECK(opt.steps() == steps);
}

struct SGDByHand {
  double lr, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  std::vector<double> buf = {0, 0};
  double operator()(size_t i, double p, double g, int step) {
    g += weight_decay * p;
    if (momentum != 0) {
      buf[i] = step == 1 ? g : momentum * buf[i] + (1 - dampening) * g;
      g = nesterov ? g + momentum * buf[i] : buf[i];
    }
    return p - lr * g;
  }
};

struct AdamByHand {
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool amsgrad = false, decoupled = false;
  std::vector<double> m = {0, 0}, v = {0, 0}, vmax = {0, 0};
  double operator()(size_t i, double p, double g, int t) {
    if (decoupled)
      p *= 1 - lr * weight_decay;
    else
      g += weight_decay * p;
    m[i] = beta1 * m[i] + (1 - beta1) * g;
    v[i] = beta2 * v[i] + (1 - beta2) * g * g;
    double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
    vmax[i] = std::max(vmax[i], v[i]);
    double denom = std::sqrt(amsgrad ? vmax[i] : v[i]) / std::sqrt(bc2) + eps;
    return p - lr / bc1 * m[i] / denom;
  }
};

}  // namespace

// ---- SGD ----

TEST_CASE("SGD: p <- p - lr g") {
  Tensor p = start_param();
  nn::SGD opt({p}, {.lr = 0.05});
  check_sequence(opt, p, 5, SGDByHand{.lr = 0.05});
}

TEST_CASE("SGD with momentum: b <- g on the first step, then b <- mu b + g") {
  Tensor p = start_param();
  nn::SGD opt({p}, {.lr = 0.05, .momentum = 0.9});
  check_sequence(opt, p, 6, SGDByHand{.lr = 0.05, .momentum = 0.9});
}

TEST_CASE("SGD with momentum and dampening: b <- mu b + (1 - dampening) g after the first step") {
  Tensor p = start_param();
  nn::SGD opt({p}, {.lr = 0.05, .momentum = 0.8, .dampening = 0.3});
  check_sequence(opt, p, 6, SGDByHand{.lr = 0.05, .momentum = 0.8, .dampening = 0.3});
}

TEST_CASE("SGD with nesterov momentum: the step is g + mu b") {
  Tensor p = start_param();
  nn::SGD opt({p}, {.lr = 0.05, .momentum = 0.9, .nesterov = true});
  check_sequence(opt, p, 6, SGDByHand{.lr = 0.05, .momentum = 0.9, .nesterov = true});
}

TEST_CASE("SGD with weight decay: g <- g + wd p, before momentum") {
  Tensor p = start_param();
  nn::SGD opt({p}, {.lr = 0.05, .weight_decay = 0.1});
  check_sequence(opt, p, 4, SGDByHand{.lr = 0.05, .weight_decay = 0.1});
  Tensor q = start_param();
  nn::SGD opt2({q}, {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true});
  check_sequence(opt2, q, 5,
                 SGDByHand{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true});
}

// ---- Adam / AdamW ----

TEST_CASE("Adam: moments with bias correction") {
  Tensor p = start_param();
  nn::Adam opt({p}, {.lr = 0.1});
  check_sequence(opt, p, 8, AdamByHand{.lr = 0.1});
  // The first step moves every element by about lr (m / sqrt(v) = sign(g) after correction).
  Tensor q = start_param();
  nn::Adam first({q}, {.lr = 0.1});
  problem_loss(q).backward();
  first.step();
  CHECK(q.at({0}) == doctest::Approx(kP0[0] - 0.1).epsilon(1e-6));
  CHECK(q.at({1}) == doctest::Approx(kP0[1] - 0.1).epsilon(1e-6));
}

TEST_CASE("Adam with other betas and eps") {
  Tensor p = start_param();
  nn::Adam opt({p}, {.lr = 0.02, .beta1 = 0.5, .beta2 = 0.7, .eps = 1e-3});
  check_sequence(opt, p, 6, AdamByHand{.lr = 0.02, .beta1 = 0.5, .beta2 = 0.7, .eps = 1e-3});
}

TEST_CASE("Adam with amsgrad: the running maximum of v is used in the denominator") {
  // beta2 = 0.5 lets v shrink as the gradients shrink, so the maximum matters.
  Tensor p = start_param();
  nn::Adam opt({p}, {.lr = 0.1, .beta2 = 0.5, .amsgrad = true});
  check_sequence(opt, p, 10, AdamByHand{.lr = 0.1, .beta2 = 0.5, .amsgrad = true});
  // ... and it does differ from plain Adam on this problem.
  Tensor q = start_param();
  nn::Adam plain({q}, {.lr = 0.1, .beta2 = 0.5});
  for (int s = 0; s < 10; ++s) {
    plain.zero_grad();
    problem_loss(q).backward();
    plain.step();
  }
  CHECK(std::abs(p.at({0}) - q.at({0})) > 1e-4);
}

TEST_CASE("Adam weight decay is an L2 term in the gradient") {
  Tensor p = start_param();
  nn::Adam opt({p}, {.lr = 0.1, .weight_decay = 0.5});
  check_sequence(opt, p, 6, AdamByHand{.lr = 0.1, .weight_decay = 0.5});
}

TEST_CASE("AdamW decays the weights directly: p <- p (1 - lr wd), then the Adam step") {
  Tensor p = start_param();
  nn::AdamW opt({p}, {.lr = 0.1, .weight_decay = 0.5});
  check_sequence(opt, p, 6, AdamByHand{.lr = 0.1, .weight_decay = 0.5, .decoupled = true});
  // The default decay is PyTorch's 0.01.
  CHECK(nn::AdamW::with_decay().weight_decay == 0.01);
  Tensor q = start_param();
  nn::AdamW defaults({q});
  CHECK(defaults.param_groups()[0].options.weight_decay == 0.01);
  CHECK(defaults.param_groups()[0].lr() == 1e-3);
}

TEST_CASE("AdamW keeps its 0.01 decay however the options are written") {
  // Issue 12: a designated initialiser used to build a plain AdamOptions (decay 0).
  Tensor p = start_param(), q = start_param(), r = start_param();
  nn::AdamW designated({p}, {.lr = 3e-4});
  CHECK(designated.param_groups()[0].options.weight_decay == 0.01);
  CHECK(designated.param_groups()[0].lr() == 3e-4);
  nn::AdamWOptions o;
  o.lr = 0.2;
  nn::AdamW assigned({q}, o);
  CHECK(assigned.param_groups()[0].options.weight_decay == 0.01);
  CHECK(assigned.param_groups()[0].lr() == 0.2);
  nn::AdamW betas({r}, {.beta2 = 0.95, .amsgrad = true});
  CHECK(betas.param_groups()[0].options.weight_decay == 0.01);
  CHECK(betas.param_groups()[0].options.beta2 == 0.95);
  CHECK(betas.param_groups()[0].options.amsgrad);
  // The same decay is applied in the step: p <- p (1 - lr wd) before the Adam update.
  check_sequence(designated, p, 3, AdamByHand{.lr = 3e-4, .weight_decay = 0.01, .decoupled = true});
}

// Lion's rule as its header writes it, in double.
struct LionByHand {
  double lr, beta1 = 0.9, beta2 = 0.99, weight_decay = 0;
  std::vector<double> m = {0, 0};
  double operator()(size_t i, double p, double g, int /*step*/) {
    double c = beta1 * m[i] + (1 - beta1) * g;
    double sign = c > 0 ? 1 : c < 0 ? -1 : 0;
    m[i] = beta2 * m[i] + (1 - beta2) * g;
    return p * (1 - lr * weight_decay) - lr * sign;
  }
};

TEST_CASE("Lion follows its rule: sign of the interpolated momentum, decoupled decay") {
  for (double wd : {0.0, 0.5}) {
    CAPTURE(wd);
    Tensor p = start_param();
    nn::Lion opt({p}, {.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .weight_decay = wd});
    check_sequence(opt, p, 6,
                   LionByHand{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .weight_decay = wd});
  }
  // Its state goes through a checkpoint like the others'.
  Tensor p = start_param(), q = start_param();
  nn::Lion a({p}, {.lr = 0.01}), b({q});
  problem_loss(p).backward();
  a.step();
  b.load_state_dict(a.state_dict());
  CHECK(b.param_groups()[0].lr() == 0.01);
  CHECK(b.steps() == 1);
  CHECK_THROWS_WITH_PARTS(nn::Lion({p}, {.beta2 = 1.5}), ValueError, "Lion", "betas");
}

// ---- groups, state, zero_grad ----

TEST_CASE("parameter groups have their own settings; unset options come from the defaults") {
  Tensor p = start_param(), q = start_param();
  nn::SGD opt({p}, {.lr = 0.05, .momentum = 0.9});
  opt.add_param_group({q}, [](nn::SGDOptions& o) { o.lr = 0.01; });
  REQUIRE(opt.param_groups().size() == 2);
  CHECK(opt.param_groups()[1].lr() == 0.01);
  CHECK(opt.param_groups()[1].options.momentum == 0.9);
  SGDByHand hp{.lr = 0.05, .momentum = 0.9}, hq{.lr = 0.01, .momentum = 0.9};
  std::vector<double> ep = kP0, eq = kP0;
  for (int s = 1; s <= 4; ++s) {
    opt.zero_grad();
    (problem_loss(p) + problem_loss(q)).backward();
    opt.step();
    for (size_t i = 0; i < 2; ++i) {
      ep[i] = hp(i, ep[i], problem_grad(ep[i], i), s);
      eq[i] = hq(i, eq[i], problem_grad(eq[i], i), s);
      CHECK(p.at({static_cast<int64_t>(i)}) == doctest::Approx(ep[i]).epsilon(1e-12));
      CHECK(q.at({static_cast<int64_t>(i)}) == doctest::Approx(eq[i]).epsilon(1e-12));
    }
  }
  opt.set_lr(0.5);
  CHECK(opt.param_groups()[0].lr() == 0.5);
  CHECK(opt.param_groups()[1].lr() == 0.5);
}

TEST_CASE("parameters without a gradient are left alone; zero_grad drops or zeroes gradients") {
  Tensor p = start_param(), unused = Tensor({7.0}).requires_grad_();
  nn::SGD opt({p, unused}, {.lr = 0.1, .momentum = 0.9});
  problem_loss(p).backward();
  opt.step();
  CHECK(unused.item() == 7.0);
  CHECK(p.grad().defined());
  opt.zero_grad(/*set_to_none=*/false);
  CHECK(p.grad().to_vector<double>() == std::vector<double>{0, 0});
  opt.zero_grad();
  CHECK_FALSE(p.grad().defined());
}

TEST_CASE("optimizer state_dict / load_state_dict: a restored Adam continues identically") {
  Tensor p = start_param();
  nn::Adam opt({p}, {.lr = 0.1, .amsgrad = true});
  auto run = [](nn::Optimizer& o, Tensor& x, int n) {
    for (int s = 0; s < n; ++s) {
      o.zero_grad();
      problem_loss(x).backward();
      o.step();
    }
  };
  run(opt, p, 3);
  nn::OptimizerState state = opt.state_dict();
  CHECK(state.scalars.at("step") == 3);
  CHECK(state.scalars.at("group.0.lr") == 0.1);
  CHECK_FALSE(state.tensors.empty());

  Tensor q = p.detach().clone().requires_grad_();
  nn::Adam restored({q}, {.lr = 0.5});
  restored.load_state_dict(state);
  CHECK(restored.steps() == 3);
  CHECK(restored.param_groups()[0].lr() == 0.1);
  run(opt, p, 3);
  run(restored, q, 3);
  CHECK(p.to_vector<double>() == q.to_vector<double>());

  nn::Adam wrong({start_param(), start_param()});
  CHECK_THROWS_WITH_PARTS(wrong.load_state_dict(state), ValueError, "load_state_dict", "group 0");
}

TEST_CASE("optimizer argument errors") {
  Tensor p = start_param();
  CHECK_THROWS_WITH_PARTS(nn::SGD({p}, {.lr = 0.1, .nesterov = true}), ValueError, "SGD",
                          "nesterov");
  CHECK_THROWS_WITH_PARTS(nn::SGD({p}, {.lr = -0.1}), ValueError, "negative learning rate");
  CHECK_THROWS_WITH_PARTS(nn::Adam({p}, {.beta1 = 1.0}), ValueError, "Adam", "betas");
  nn::SGD opt({p});
  // Options are typed: a group's are checked as the constructor's are.
  CHECK_THROWS_WITH_PARTS(
      opt.add_param_group({start_param()},
                          [](nn::SGDOptions& o) { o.momentum = -0.0, o.nesterov = true; }),
      ValueError, "SGD", "nesterov");
  CHECK_THROWS_WITH_PARTS(opt.add_param_group({start_param()}, nn::SGDOptions{.lr = -1}),
                          ValueError, "negative learning rate");
  CHECK_THROWS_WITH_PARTS(nn::SGD({p * 2.0}), ValueError, "leaf");
}

// ---- schedules ----

TEST_CASE("StepLR: lr = base gamma^floor(t / step_size), applied to every group") {
  Tensor p = start_param(), q = start_param();
  nn::SGD opt({p}, {.lr = 1.0});
  opt.add_param_group({q}, [](nn::SGDOptions& o) { o.lr = 0.1; });
  nn::StepLR sched(opt, 3, 0.5);
  std::vector<double> expected = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25};
  for (int64_t t = 0; t < 8; ++t) {
    CHECK(sched.lr(t) == doctest::Approx(expected[t]));
    CHECK(sched.lr(t, 1) == doctest::Approx(0.1 * expected[t]));
  }
  for (int64_t t = 1; t < 8; ++t) {
    sched.step();
    CHECK(sched.last_step() == t);
    CHECK(opt.param_groups()[0].lr() == doctest::Approx(expected[t]));
    CHECK(opt.param_groups()[1].lr() == doctest::Approx(0.1 * expected[t]));
  }
}

TEST_CASE("ExponentialLR: lr = base gamma^t") {
  Tensor p = start_param();
  nn::SGD opt({p}, {.lr = 2.0});
  nn::ExponentialLR sched(opt, 0.9);
  for (int t = 1; t <= 5; ++t) {
    sched.step();
    CHECK(opt.param_groups()[0].lr() == doctest::Approx(2.0 * std::pow(0.9, t)));
  }
}

TEST_CASE("CosineWarmupLR: linear warmup, cosine decay to min_factor, then flat") {
  Tensor p = start_param();
  nn::SGD opt({p}, {.lr = 1.0});
  const int64_t warmup = 4, total = 10;
  const double min_factor = 0.1;
  nn::CosineWarmupLR sched(opt, warmup, total, min_factor);
  auto by_hand = [&](int64_t t) {
    if (t < warmup) return static_cast<double>(t + 1) / (warmup + 1);
    if (t >= total) return min_factor;
    double progress = static_cast<double>(t - warmup) / static_cast<double>(total - warmup);
    return min_factor + (1 - min_factor) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
  };
  // Construction already applies the first warmup value.
  CHECK(opt.param_groups()[0].lr() == doctest::Approx(0.2));
  CHECK(sched.lr(warmup) == doctest::Approx(1.0));         // the peak
  CHECK(sched.lr(7) == doctest::Approx(0.1 + 0.9 * 0.5));  // half way down
  for (int64_t t = 1; t <= 12; ++t) {
    sched.step();
    CHECK(opt.param_groups()[0].lr() == doctest::Approx(by_hand(t)));
  }
  CHECK(opt.param_groups()[0].lr() == doctest::Approx(min_factor));
  CHECK_THROWS_WITH_PARTS(nn::CosineWarmupLR(opt, 11, 10), ValueError, "CosineWarmupLR", "11",
                          "10");
}

TEST_CASE("LinearDecayLR: optional warmup, then a straight line to end_factor") {
  Tensor p = start_param();
  nn::SGD opt({p}, {.lr = 0.5});
  nn::LinearDecayLR sched(opt, 10, 0.2, 2);
  auto by_hand = [](int64_t t) {
    if (t < 2) return (t + 1) / 3.0;
    if (t >= 10) return 0.2;
    return 1.0 + (0.2 - 1.0) * static_cast<double>(t - 2) / 8.0;
  };
  CHECK(opt.param_groups()[0].lr() == doctest::Approx(0.5 / 3.0));
  for (int64_t t = 1; t <= 12; ++t) {
    sched.step();
    CHECK(opt.param_groups()[0].lr() == doctest::Approx(0.5 * by_hand(t)));
  }
  // Without warmup it starts at the base lr.
  nn::SGD opt2({start_param()}, {.lr = 1.0});
  nn::LinearDecayLR plain(opt2, 4);
  CHECK(opt2.param_groups()[0].lr() == 1.0);
  CHECK(plain.lr(2) == doctest::Approx(0.5));
  CHECK(plain.lr(4) == 0.0);
  CHECK_THROWS_WITH_PARTS(nn::StepLR(opt2, 0), ValueError, "StepLR", "step_size");
}

// ---- clipping ----

TEST_CASE("clip_grad_norm_: scales all gradients together to the maximum norm") {
  Tensor a = Tensor({0.0, 0.0}).to(float64).requires_grad_();
  Tensor b = Tensor({0.0}).to(float64).requires_grad_();
  Tensor none = Tensor({1.0}).to(float64).requires_grad_();  // no gradient: ignored
  a.set_grad(Tensor({3.0, 4.0}).to(float64));
  b.set_grad(Tensor({12.0}).to(float64));
  double norm = nn::clip_grad_norm_({a, b, none}, 6.5);
  CHECK(norm == doctest::Approx(13.0));
  double scale = 6.5 / (13.0 + 1e-6);
  CHECK(a.grad().at({0}) == doctest::Approx(3.0 * scale));
  CHECK(a.grad().at({1}) == doctest::Approx(4.0 * scale));
  CHECK(b.grad().at({0}) == doctest::Approx(12.0 * scale));
  // Under the limit: untouched, the norm is still returned.
  CHECK(nn::clip_grad_norm_({a, b}, 100.0) == doctest::Approx(6.5).epsilon(1e-6));
  CHECK(b.grad().at({0}) == doctest::Approx(12.0 * scale));
  // The infinity norm is the largest magnitude; other p-norms follow their formula.
  b.set_grad(Tensor({-12.0}).to(float64));
  a.set_grad(Tensor({3.0, 4.0}).to(float64));
  CHECK(nn::clip_grad_norm_({a, b}, 1e9, INFINITY) == doctest::Approx(12.0));
  CHECK(nn::clip_grad_norm_({a, b}, 1e9, 1.0) == doctest::Approx(19.0));
  CHECK_THROWS_WITH_PARTS(nn::clip_grad_norm_({a}, 1.0, 0.0), ValueError, "clip_grad_norm_");
  // A NaN gradient makes the norm NaN for every p, wherever it stands in the list.
  for (double p : {2.0, 3.0, double(INFINITY)}) {
    b.set_grad(Tensor({NAN}).to(float64));
    a.set_grad(Tensor({3.0, 4.0}).to(float64));
    CHECK(std::isnan(nn::clip_grad_norm_({b, a}, 1e9, p)));
    CHECK(std::isnan(nn::clip_grad_norm_({a, b}, 1e9, p)));
  }
  // float32 and bfloat16 gradients: the same 2-norm (bfloat16 read in float64, not rounded).
  Tensor f = Tensor({0.0, 0.0}).requires_grad_();
  f.set_grad(Tensor({3.0, 4.0}));
  CHECK(nn::clip_grad_norm_({f}, 1e9) == doctest::Approx(5.0).epsilon(1e-7));
  Tensor h = Tensor({0.0}).to(bfloat16).requires_grad_();
  h.set_grad(Tensor({1.0 + 1.0 / 128}).to(bfloat16));  // exact in bfloat16
  CHECK(nn::clip_grad_norm_({h}, 1e9) == 1.0 + 1.0 / 128);
  CHECK(nn::clip_grad_norm_({f, h}, 1e9, 3.0) ==
        doctest::Approx(std::cbrt(27.0 + 64 + std::pow(1 + 1.0 / 128, 3))));
}

TEST_CASE("clip_grad_value_: clamps each gradient element") {
  Tensor a = Tensor({0.0, 0.0, 0.0}).requires_grad_();
  a.set_grad(Tensor({-3.0, 0.25, 2.0}));
  nn::clip_grad_value_({a}, 0.5);
  CHECK(a.grad().to_vector<float>() == std::vector<float>{-0.5f, 0.25f, 0.5f});
  CHECK_THROWS_WITH_PARTS(nn::clip_grad_value_({a}, -1.0), ValueError, "clip_grad_value_");
}

TEST_CASE("optimizers train through modules: a Linear layer fits a line") {
  // y = 2 x - 1 from four points; SGD with momentum reaches it.
  nn::Linear lin(1, 1);
  Tensor x = Tensor::from_vector(std::vector<float>{-1, 0, 1, 2}, {4, 1});
  Tensor y = x * 2.0 - 1.0;
  nn::SGD opt(lin.parameters(), {.lr = 0.1, .momentum = 0.5});
  for (int s = 0; s < 200; ++s) {
    opt.zero_grad();
    nn::mse_loss(lin(x), y).backward();
    opt.step();
  }
  CHECK(lin.weight.item() == doctest::Approx(2.0).epsilon(1e-3));
  CHECK(lin.bias.item() == doctest::Approx(-1.0).epsilon(1e-3));
}
