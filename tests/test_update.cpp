// Fused in-place parameter updates (adam_step_, sgd_step_): every variant against the update
// written out element by element in double, over lengths that exercise SIMD registers, tails and
// threads, on strided tensors, and the errors.
#include <cmath>

#include "support.h"

using namespace ag;
using test::leaf;
using test::values;

namespace {

struct Reference {
  std::vector<double> p, m, v, vmax;
};

// The same step in double, the way the header writes it.
void adam_by_hand(Reference& r, const std::vector<double>& g, const AdamStep& s, bool ams) {
  for (size_t i = 0; i < r.p.size(); ++i) {
    double gi = g[i];
    if (!s.decoupled) gi += s.weight_decay * r.p[i];
    if (s.decoupled) r.p[i] *= 1 - s.lr * s.weight_decay;
    r.m[i] += (1 - s.beta1) * (gi - r.m[i]);
    r.v[i] = s.beta2 * r.v[i] + (1 - s.beta2) * gi * gi;
    double use = r.v[i];
    if (ams) use = r.vmax[i] = std::max(r.vmax[i], r.v[i]);
    r.p[i] -= s.lr / s.bias_correction1 * r.m[i] /
              (std::sqrt(use) / std::sqrt(s.bias_correction2) + s.eps);
  }
}

// SGD's step in double, the way the header writes it.
void sgd_by_hand(std::vector<double>& p, std::vector<double>& buf, const std::vector<double>& g,
                 const SgdStep& s) {
  for (size_t i = 0; i < p.size(); ++i) {
    double d = g[i] + s.weight_decay * p[i];
    if (s.momentum != 0) {
      buf[i] = s.first_step ? d : s.momentum * buf[i] + (1 - s.dampening) * d;
      d = s.nesterov ? d + s.momentum * buf[i] : buf[i];
    }
    p[i] -= s.lr * d;
  }
}

}  // namespace

TEST_CASE("sgd_step_ equals the step written out: plain, decay, momentum, dampening, nesterov") {
  NoGradGuard ng;
  for (Dtype d : {float64, float32}) {
    for (int64_t n : {1, 17, 70001}) {
      for (int variant = 0; variant < 4; ++variant) {
        CAPTURE(n);
        CAPTURE(variant);
        SgdStep s{.lr = 0.1};
        if (variant >= 1) s.weight_decay = 0.2;
        if (variant >= 2) s.momentum = 0.9, s.dampening = 0.25;
        if (variant == 3) s.nesterov = true, s.dampening = 0;
        Tensor p = leaf({n}, -1, 1, 5).detach().to(d);
        Tensor buf = s.momentum != 0 ? zeros({n}, d) : Tensor();
        std::vector<double> pr = values(p), br(n, 0.0);
        for (int t = 1; t <= 3; ++t) {
          Tensor g = leaf({n}, -2, 2, 20 + t).detach().to(d);
          s.first_step = t == 1;
          sgd_step_(p, g, buf, s);
          sgd_by_hand(pr, br, values(g), s);
        }
        double tol = d == float64 ? 1e-12 : 1e-5;
        CHECK(test::allclose(p, Tensor::from_vector(pr), tol, tol));
        if (s.momentum != 0) CHECK(test::allclose(buf, Tensor::from_vector(br), tol, tol));
      }
    }
  }
  // Errors as adam_step_'s.
  Tensor p = zeros({4}), wrong = zeros({3});
  SgdStep with_momentum{.momentum = 0.9};
  NoGradGuard again;
  CHECK_THROWS_WITH_PARTS(sgd_step_(p, ones({4}), wrong, with_momentum), ShapeError, "sgd_step_",
                          "momentum_buffer", "[3]");
}

TEST_CASE("adam_step_ equals the step written out, for every variant, size and dtype") {
  NoGradGuard ng;
  for (Dtype d : {float64, float32}) {
    for (int64_t n : {1, 15, 16, 33, 70001}) {  // 70001: split between threads, with a tail
      for (int variant = 0; variant < 4; ++variant) {
        CAPTURE(n);
        CAPTURE(variant);
        const bool ams = variant == 3;
        AdamStep s{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.9, .eps = 1e-3};
        s.weight_decay = variant == 0 ? 0.0 : 0.3;
        s.decoupled = variant == 2;
        Tensor p = leaf({n}, -1, 1, 1).detach().to(d);
        Tensor m = zeros({n}, d), v = zeros({n}, d), vmax = ams ? zeros({n}, d) : Tensor();
        Reference r{values(p), values(m), values(v), ams ? values(vmax) : std::vector<double>(n)};
        for (int t = 1; t <= 3; ++t) {
          Tensor g = leaf({n}, -2, 2, 10 + t).detach().to(d);
          s.bias_correction1 = 1 - std::pow(s.beta1, t);
          s.bias_correction2 = 1 - std::pow(s.beta2, t);
          adam_step_(p, g, m, v, vmax, s);
          adam_by_hand(r, values(g), s, ams);
        }
        double tol = d == float64 ? 1e-12 : 2e-5;
        CHECK(test::allclose(p, Tensor::from_vector(r.p), tol, tol));
        CHECK(test::allclose(m, Tensor::from_vector(r.m), tol, tol));
        CHECK(test::allclose(v, Tensor::from_vector(r.v), tol, tol));
        if (ams) CHECK(test::allclose(vmax, Tensor::from_vector(r.vmax), tol, tol));
      }
    }
  }
}

TEST_CASE("adam_step_ on strided tensors and with a gradient of another dtype and layout") {
  NoGradGuard ng;
  AdamStep s{.lr = 0.1, .weight_decay = 0.1, .decoupled = true};
  Tensor base = leaf({6, 40}, -1, 1, 3).detach();
  Tensor p = base.t();  // [40, 6], column-major view into base
  Tensor m = zeros({6, 40}, float64).t(), v = zeros({6, 40}, float64).t(), none;
  Tensor g = leaf({40, 6}, -1, 1, 4).detach().to(float32);
  Reference r{values(p), values(m), values(v), {}};
  adam_step_(p, g, m, v, none, s);
  adam_by_hand(r, values(g.to(float64)), s, false);
  CHECK(test::allclose(p, Tensor::from_vector(r.p, {40, 6}), 1e-12, 1e-12));
  CHECK(test::allclose(v, Tensor::from_vector(r.v, {40, 6}), 1e-12, 1e-12));
}

TEST_CASE("adam_step_ with amsgrad keeps a NaN second moment") {
  NoGradGuard ng;
  AdamStep s;
  Tensor p = zeros({20}, float32), m = zeros({20}, float32), v = zeros({20}, float32);
  Tensor vmax = zeros({20}, float32);
  Tensor g = ones({20}, float32);
  g.data<float>()[17] = NAN;
  adam_step_(p, g, m, v, vmax, s);
  CHECK(std::isnan(vmax.to_vector<double>()[17]));
  CHECK(std::isnan(p.to_vector<double>()[17]));
  CHECK(std::isfinite(p.to_vector<double>()[3]));
}

TEST_CASE("adam_step_ errors name the op and what differs") {
  Tensor p = zeros({4}), m = zeros({4}), v = zeros({4}), none;
  {
    NoGradGuard ng;
    Tensor wrong = zeros({5});
    CHECK_THROWS_WITH_PARTS(adam_step_(p, ones({4}), wrong, v, none, {}), ShapeError, "adam_step_",
                            "exp_avg", "[5]", "[4]");
    Tensor f64v = zeros({4}, float64);
    CHECK_THROWS_WITH_PARTS(adam_step_(p, ones({4}), m, f64v, none, {}), DtypeError, "adam_step_",
                            "exp_avg_sq", "float64");
    CHECK_THROWS_WITH_PARTS(adam_step_(p, ones({3}), m, v, none, {}), ShapeError, "adam_step_",
                            "[3]");
  }
  Tensor q = zeros({4}).requires_grad_();
  CHECK_THROWS_WITH_PARTS(adam_step_(q, ones({4}), m, v, none, {}), AutogradError, "adam_step_",
                          "NoGradGuard");
}

TEST_CASE("many-parameter steps equal the one-parameter steps, element for element") {
  // A group as the optimizers pass it: sizes below and above the threads' grain, a strided
  // parameter, a float64 one, per-parameter first_step and bias corrections.
  NoGradGuard ng;
  const std::vector<Shape> shapes = {{3}, {200, 784}, {17}, {256, 256}, {5, 8}};
  auto make = [&](uint64_t seed) {
    std::vector<Tensor> ts;
    for (size_t i = 0; i < shapes.size(); ++i) {
      Tensor t = leaf(shapes[i], -1, 1, seed + i).detach().to(i == 2 ? float64 : float32);
      if (i == 4) t = transpose(t.contiguous(), 0, 1);  // strided: walked on its own
      ts.push_back(t);
    }
    return ts;
  };
  auto copies = [](const std::vector<Tensor>& ts) {
    std::vector<Tensor> out;
    for (const Tensor& t : ts) {
      Tensor c = t.clone();
      out.push_back(t.is_contiguous() ? c : transpose(transpose(t, 0, 1).clone(), 0, 1));
    }
    return out;
  };
  const std::vector<Tensor> grads = make(100);
  SUBCASE("sgd") {
    for (bool momentum : {false, true}) {
      std::vector<Tensor> p1 = make(1), p2 = copies(p1);
      std::vector<Tensor> b1 = make(50), b2 = copies(b1);
      std::vector<SgdItem> items;
      for (size_t i = 0; i < p1.size(); ++i) {
        SgdStep s{.lr = 0.1, .weight_decay = 0.01, .first_step = i % 2 == 0};
        if (momentum) s.momentum = 0.9, s.dampening = 0.1;
        items.push_back({&p1[i], &grads[i], &b1[i], s});
        sgd_step_(p2[i], grads[i], b2[i], s);
      }
      sgd_step_(items);
      for (size_t i = 0; i < p1.size(); ++i) {
        CAPTURE(i);
        CHECK(values(p1[i]) == values(p2[i]));
        CHECK(values(b1[i]) == values(b2[i]));
        CHECK(values(p1[i]) != values(make(1)[i]));  // it did step
      }
    }
  }
  SUBCASE("adam") {
    for (bool ams : {false, true}) {
      std::vector<Tensor> p1 = make(1), p2 = copies(p1);
      std::vector<Tensor> m1 = make(30), m2 = copies(m1), v1 = make(60), v2 = copies(v1);
      for (auto* vs : {&v1, &v2})
        for (Tensor& v : *vs) v.mul_(v);  // second moments are >= 0
      std::vector<Tensor> x1 = copies(v1), x2 = copies(v1);
      std::vector<AdamItem> items;
      for (size_t i = 0; i < p1.size(); ++i) {
        AdamStep s{.lr = 0.01,
                   .weight_decay = 0.1,
                   .decoupled = i % 2 == 1,
                   .bias_correction1 = 1 - std::pow(0.9, double(i + 1)),
                   .bias_correction2 = 1 - std::pow(0.999, double(i + 1))};
        Tensor none;
        items.push_back({&p1[i], &grads[i], &m1[i], &v1[i], ams ? &x1[i] : nullptr, s});
        adam_step_(p2[i], grads[i], m2[i], v2[i], ams ? x2[i] : none, s);
      }
      adam_step_(items);
      for (size_t i = 0; i < p1.size(); ++i) {
        CAPTURE(i);
        CHECK(values(p1[i]) == values(p2[i]));
        CHECK(values(m1[i]) == values(m2[i]));
        CHECK(values(v1[i]) == values(v2[i]));
        if (ams) CHECK(values(x1[i]) == values(x2[i]));
      }
    }
  }
  SUBCASE("a bad item is reported before any parameter is written") {
    std::vector<Tensor> p = make(1);
    const std::vector<double> before = values(p[0]);
    Tensor wrong = zeros({4});
    std::vector<SgdItem> items = {{&p[0], &grads[0], nullptr, {}}, {&p[1], &wrong, nullptr, {}}};
    CHECK_THROWS_WITH_PARTS(sgd_step_(items), ShapeError, "sgd_step_", "[4]");
    CHECK(values(p[0]) == before);
  }
}
