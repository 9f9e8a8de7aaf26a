// foreach_update_ (autograd/foreach.h), and the optimizers' update rules written with it
// (nn/optim): every SGD and Adam variant against the update written out element by element in
// double, over lengths that exercise SIMD registers, tails and threads, on strided tensors and
// with gradients of another dtype; the primitive's errors, version counters and schedule.
#include <cmath>

#include "autograd/foreach.h"
#include "nn/nn.h"
#include "support.h"

using namespace ag;
using test::leaf;
using test::values;

namespace {

struct AdamReference {
  std::vector<double> p, m, v, vmax;
};

struct AdamCase {
  nn::AdamOptions o;
  bool decoupled = false;
};

// One Adam step in double at step number t, the way nn/optim/adam.h writes it.
void adam_by_hand(AdamReference& r, const std::vector<double>& g, const AdamCase& c, int t) {
  const nn::AdamOptions& o = c.o;
  const double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
  for (size_t i = 0; i < r.p.size(); ++i) {
    double gi = g[i];
    if (!c.decoupled) gi += o.weight_decay * r.p[i];
    if (c.decoupled) r.p[i] *= 1 - o.lr * o.weight_decay;
    r.m[i] += (1 - o.beta1) * (gi - r.m[i]);
    r.v[i] = o.beta2 * r.v[i] + (1 - o.beta2) * gi * gi;
    double use = r.v[i];
    if (o.amsgrad) use = r.vmax[i] = std::max(r.vmax[i], r.v[i]);
    r.p[i] -= o.lr / bc1 * r.m[i] / (std::sqrt(use) / std::sqrt(bc2) + o.eps);
  }
}

// One SGD step in double, the way nn/optim/sgd.h writes it.
void sgd_by_hand(std::vector<double>& p, std::vector<double>& buf, const std::vector<double>& g,
                 const nn::SGDOptions& o, bool first) {
  for (size_t i = 0; i < p.size(); ++i) {
    double d = g[i] + o.weight_decay * p[i];
    if (o.momentum != 0) {
      buf[i] = first ? d : o.momentum * buf[i] + (1 - o.dampening) * d;
      d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
    }
    p[i] -= o.lr * d;
  }
}

Tensor param(const Tensor& values_like) { return values_like.detach().clone().requires_grad_(); }

}  // namespace

TEST_CASE("SGD's rule equals the step written out: plain, decay, momentum, dampening, nesterov") {
  for (Dtype d : {float64, float32}) {
    for (int64_t n : {1, 17, 70001}) {  // 70001: split between threads, with a tail
      for (int variant = 0; variant < 4; ++variant) {
        CAPTURE(n);
        CAPTURE(variant);
        nn::SGDOptions o{.lr = 0.1};
        if (variant >= 1) o.weight_decay = 0.2;
        if (variant >= 2) o.momentum = 0.9, o.dampening = 0.25;
        if (variant == 3) o.nesterov = true, o.dampening = 0;
        Tensor p = param(leaf({n}, -1, 1, 5).detach().to(d));
        nn::SGD opt({p}, o);
        std::vector<double> pr = values(p), br(n, 0.0);
        for (int t = 1; t <= 3; ++t) {
          Tensor g = leaf({n}, -2, 2, 20 + t).detach().to(d);
          p.set_grad(g);
          opt.step();
          sgd_by_hand(pr, br, values(g), o, t == 1);
        }
        double tol = d == float64 ? 1e-12 : 1e-5;
        CHECK(test::allclose(p.detach(), Tensor::from_vector(pr), tol, tol));
      }
    }
  }
}

TEST_CASE("Adam's rule equals the step written out, for every variant, size and dtype") {
  for (Dtype d : {float64, float32}) {
    for (int64_t n : {1, 15, 16, 33, 70001}) {
      for (int variant = 0; variant < 4; ++variant) {
        CAPTURE(n);
        CAPTURE(variant);
        AdamCase c{{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.9, .eps = 1e-3}};
        c.o.weight_decay = variant == 0 ? 0.0 : 0.3;
        c.decoupled = variant == 2;
        c.o.amsgrad = variant == 3;
        Tensor p = param(leaf({n}, -1, 1, 1).detach().to(d));
        std::unique_ptr<nn::Adam> opt =
            c.decoupled
                ? std::make_unique<nn::AdamW>(std::vector<Tensor>{p},
                                              nn::AdamWOptions{.lr = c.o.lr,
                                                               .beta1 = c.o.beta1,
                                                               .beta2 = c.o.beta2,
                                                               .eps = c.o.eps,
                                                               .weight_decay = c.o.weight_decay})
                : std::make_unique<nn::Adam>(std::vector<Tensor>{p}, c.o);
        AdamReference r{values(p), std::vector<double>(n), std::vector<double>(n),
                        std::vector<double>(n)};
        for (int t = 1; t <= 3; ++t) {
          Tensor g = leaf({n}, -2, 2, 10 + t).detach().to(d);
          p.set_grad(g);
          opt->step();
          adam_by_hand(r, values(g), c, t);
        }
        double tol = d == float64 ? 1e-12 : 2e-5;
        CHECK(test::allclose(p.detach(), Tensor::from_vector(r.p), tol, tol));
        nn::OptimizerState s = opt->state_dict();
        for (auto& [name, t] : s.tensors) {
          if (name.ends_with(".exp_avg"))
            CHECK(test::allclose(t, Tensor::from_vector(r.m), tol, tol));
          if (name.ends_with(".exp_avg_sq"))
            CHECK(test::allclose(t, Tensor::from_vector(r.v), tol, tol));
          if (name.ends_with(".max_exp_avg_sq"))
            CHECK(test::allclose(t, Tensor::from_vector(r.vmax), tol, tol));
        }
      }
    }
  }
}

TEST_CASE("Adam on a strided parameter with a gradient of another dtype and layout") {
  Tensor base = leaf({6, 40}, -1, 1, 3).detach();
  Tensor p = base.t();  // [40, 6], column-major view into base
  p.requires_grad_();
  AdamCase c{{.lr = 0.1, .weight_decay = 0.1}, true};
  nn::AdamW opt({p}, {.lr = 0.1, .weight_decay = 0.1});
  Tensor g = leaf({40, 6}, -1, 1, 4).detach().to(float32);
  AdamReference r{values(p), std::vector<double>(240), std::vector<double>(240), {}};
  p.set_grad(g);
  opt.step();
  adam_by_hand(r, values(g.to(float64)), c, 1);
  CHECK(test::allclose(p.detach(), Tensor::from_vector(r.p, {40, 6}), 1e-12, 1e-12));
  CHECK(values(base) == values(p.t()));  // written through the view
}

TEST_CASE("Adam with amsgrad keeps a NaN second moment") {
  Tensor p = zeros({20}, float32).requires_grad_();
  nn::Adam opt({p}, {.amsgrad = true});
  Tensor g = ones({20}, float32);
  g.data<float>()[17] = NAN;
  p.set_grad(g);
  opt.step();
  CHECK(std::isnan(p.detach().to_vector<double>()[17]));
  CHECK(std::isfinite(p.detach().to_vector<double>()[3]));
  for (auto& [name, t] : opt.state_dict().tensors)
    if (name.ends_with(".max_exp_avg_sq")) CHECK(std::isnan(t.to_vector<double>()[17]));
}

TEST_CASE("foreach_update_: many items in one call equal one call per item, element for element") {
  // Sizes below and above the threads' grain, a strided item, a float64 one.
  NoGradGuard ng;
  const std::vector<Shape> shapes = {{3}, {200, 784}, {17}, {256, 256}, {5, 8}};
  auto make = [&](uint64_t seed) {
    std::vector<Tensor> ts;
    for (size_t i = 0; i < shapes.size(); ++i) {
      Tensor t = leaf(shapes[i], -1, 1, seed + i).detach().to(i == 2 ? float64 : float32);
      if (i == 4) t = transpose(t.contiguous(), 0, 1);
      ts.push_back(t);
    }
    return ts;
  };
  auto rule = [](const std::vector<double>& rates) {
    return [&rates]<class T>(size_t i) {
      const T rate = static_cast<T>(rates[i]);
      return [=](auto& x) {  // x: p, g, b
        using V = std::decay_t<decltype(x[0])>;
        x[2] = V(0.5) * x[2] + x[1];
        x[0] = x[0] - V(rate) * foreach_sqrt(x[2] * x[2] + V(1));
      };
    };
  };
  const std::vector<double> rates = {0.1, 0.2, 0.3, 0.4, 0.5};
  std::vector<Tensor> p1 = make(1), b1 = make(50), g = make(100);
  std::vector<Tensor> p2 = make(1), b2 = make(50);
  std::vector<std::array<Tensor, 3>> all;
  for (size_t i = 0; i < p1.size(); ++i) all.push_back({p1[i], g[i], b1[i]});
  foreach_update_<3>(all, {true, false, true}, rule(rates));
  for (size_t i = 0; i < p2.size(); ++i) {
    CAPTURE(i);
    std::vector<double> one_rate = {rates[i]};
    std::vector<std::array<Tensor, 3>> one = {{p2[i], g[i], b2[i]}};
    foreach_update_<3>(one, {true, false, true}, rule(one_rate));
    CHECK(values(p1[i]) == values(p2[i]));
    CHECK(values(b1[i]) == values(b2[i]));
    CHECK(values(p1[i]) != values(make(1)[i]));   // it did update
    CHECK(values(g[i]) == values(make(100)[i]));  // read-only operands are untouched
  }
}

TEST_CASE("foreach_update_ bumps the version of written operands only") {
  NoGradGuard ng;
  Tensor p = ones({8}), g = ones({8});
  uint32_t pv = p.version(), gv = g.version();
  std::vector<std::array<Tensor, 2>> items = {{p, g}};
  foreach_update_<2>(items, {true, false},
                     []<class T>(size_t) { return [](auto& x) { x[0] = x[0] + x[1]; }; });
  CHECK(p.version() > pv);
  CHECK(g.version() == gv);
  CHECK(values(p) == std::vector<double>(8, 2.0));
}

TEST_CASE("foreach_update_ errors name the item and operand, before anything is written") {
  auto add = []<class T>(size_t) { return [](auto& x) { x[0] = x[0] + x[1]; }; };
  Tensor p = zeros({4}), q = zeros({4});
  {
    NoGradGuard ng;
    std::vector<std::array<Tensor, 2>> shape = {{q, ones({4})}, {p, zeros({5})}};
    CHECK_THROWS_WITH_PARTS(foreach_update_<2>(shape, {true, false}, add), ShapeError,
                            "foreach_update_", "item 1", "operand 1", "[5]", "[4]");
    CHECK(values(q) == std::vector<double>(4, 0.0));
    std::vector<std::array<Tensor, 2>> dtype = {{p, ones({4}, float64)}};
    CHECK_THROWS_WITH_PARTS(foreach_update_<2>(dtype, {true, false}, add), DtypeError,
                            "foreach_update_", "float64");
    std::vector<std::array<Tensor, 2>> undefined = {{p, Tensor()}};
    CHECK_THROWS_WITH_PARTS(foreach_update_<2>(undefined, {true, false}, add), ValueError,
                            "undefined");
  }
  Tensor r = zeros({4}).requires_grad_();
  std::vector<std::array<Tensor, 2>> recorded = {{r, ones({4})}};
  CHECK_THROWS_WITH_PARTS(foreach_update_<2>(recorded, {true, false}, add), AutogradError,
                          "foreach_update_", "NoGradGuard");
}
