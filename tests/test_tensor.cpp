// The Tensor itself (tensor.h, xtensor.h, print.h): factories, nested initializer lists, vectors
// and xtensor arrays, element access, dtype conversion (differentiable between the float types),
// contiguous / clone / detach, the autograd flags, every in-place op with its version counter and
// its interplay with the tape, and printing.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <type_traits>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::f64;
using test::leaf;
using test::values;

namespace {

void check_values(const Tensor& got, const std::vector<double>& expected, double tol = 1e-12) {
  auto v = values(got);
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i << ": got " << v[i] << ", expected " << expected[i]);
    CHECK(std::abs(v[i] - expected[i]) <= tol * (1 + std::abs(expected[i])));
  }
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// construction

// A double does not silently become a tensor (f(3.0) for f(const Tensor&) does not compile); the
// scalar operators still take doubles on either side.
static_assert(!std::is_convertible_v<double, Tensor>);
static_assert(std::is_constructible_v<Tensor, double>);
static_assert(std::is_invocable_r_v<Tensor, decltype([](const Tensor& x) { return x * 2.0; }),
                                    const Tensor&>);
static_assert(std::is_invocable_r_v<Tensor, decltype([](const Tensor& x) { return 2.0 - x; }),
                                    const Tensor&>);

TEST_CASE("factories: zeros, ones, full, arange, linspace, eye, scalar_tensor, *_like") {
  Tensor z = zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.dtype() == float32);
  CHECK(z.is_contiguous());
  check_values(z, std::vector<double>(6, 0.0));
  check_values(ones({3}, float64), {1, 1, 1});
  CHECK(ones({3}, float64).dtype() == float64);
  check_values(full({2}, 2.5), {2.5, 2.5});
  CHECK(full({2}, -3, int64).to_vector<int64_t>() == std::vector<int64_t>{-3, -3});
  CHECK(zeros({0, 4}).numel() == 0);
  CHECK(zeros({0, 4}).shape() == Shape{0, 4});
  CHECK(zeros({2, 3}).version() == 0);  // a fresh tensor starts at version 0

  // arange: [start, stop) by step, either direction; the int64 overload counts from 0.
  check_values(arange(0, 1, 0.25), {0, 0.25, 0.5, 0.75});
  check_values(arange(4), {0, 1, 2, 3});
  CHECK(arange(3, int64).dtype() == int64);
  CHECK(arange(5, 0, -2, int64).to_vector<int64_t>() == std::vector<int64_t>{5, 3, 1});
  CHECK(arange(0, 1, 0.1).numel() == 10);  // 0.1 steps do not overshoot to 11 entries
  CHECK(arange(3, 3).numel() == 0);
  CHECK(arange(3, 0).numel() == 0);  // positive step, stop below start: empty
  CHECK_THROWS_WITH_PARTS(arange(0, 1, 0), ValueError, "arange", "step");

  // linspace: both ends included.
  check_values(linspace(0, 1, 5, float64), {0, 0.25, 0.5, 0.75, 1});
  check_values(linspace(2, -2, 3, float64), {2, 0, -2});
  check_values(linspace(7, 9, 1), {7});
  CHECK(linspace(0, 1, 0).numel() == 0);
  CHECK_THROWS_WITH_PARTS(linspace(0, 1, -1), ValueError, "linspace", "-1");

  check_values(eye(3), {1, 0, 0, 0, 1, 0, 0, 0, 1});
  CHECK(eye(2, int64).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0, 1});
  CHECK(eye(0).shape() == Shape{0, 0});
  CHECK_THROWS_WITH_PARTS(eye(-1), ValueError, "eye", "-1");

  Tensor s = scalar_tensor(3.0, float64);
  CHECK(s.shape() == Shape{});
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.dtype() == float64);
  CHECK(s.item() == 3.0);
  CHECK(scalar_tensor(2).dtype() == float32);

  // *_like copy shape and dtype, for floating and integer tensors.
  Tensor base = full({2, 3}, 7, float64);
  for (const Tensor& t :
       {zeros_like(base), ones_like(base), full_like(base, -1), empty_like(base)}) {
    CHECK(t.shape() == Shape{2, 3});
    CHECK(t.dtype() == float64);
    CHECK_FALSE(t.impl()->storage == base.impl()->storage);
  }
  check_values(zeros_like(base), std::vector<double>(6, 0.0));
  check_values(ones_like(base), std::vector<double>(6, 1.0));
  check_values(full_like(base, -1), std::vector<double>(6, -1.0));
  Tensor ints = arange(4, int64);
  CHECK(ones_like(ints).dtype() == int64);
  CHECK(full_like(ints, 9).to_vector<int64_t>() == std::vector<int64_t>(4, 9));

  CHECK_THROWS_WITH_PARTS(zeros({2, -1}), ShapeError, "negative", "[2, -1]");
}

TEST_CASE("nested initializer lists: 0-d, 1-D, 2-D, 3-D; ragged lists are rejected") {
  Tensor s = Tensor(2.5);
  CHECK(s.shape() == Shape{});
  CHECK(s.item() == 2.5);
  Tensor v = Tensor({1.5, -2.5, 3});
  CHECK(v.shape() == Shape{3});
  CHECK(v.dtype() == float32);
  check_values(v, {1.5, -2.5, 3});
  Tensor a = Tensor({{1, 2, 3}, {4, 5, 6}});
  CHECK(a.shape() == Shape{2, 3});
  check_values(a, {1, 2, 3, 4, 5, 6});
  CHECK(a.at({1, 2}) == 6);
  Tensor b = Tensor({{{1, 2}, {3, 4}, {5, 6}}, {{7, 8}, {9, 10}, {11, 12}}});
  CHECK(b.shape() == Shape{2, 3, 2});
  CHECK(b.at({1, 0, 1}) == 8);
  CHECK(b.at({0, 2, 0}) == 5);
  // Ragged lists: the message names the two lengths that disagree.
  CHECK_THROWS_WITH_PARTS(Tensor({{1, 2}, {3}}), ShapeError, "Tensor", "rows", "2 and 1");
  CHECK_THROWS_WITH_PARTS(Tensor({{1}, {2, 3, 4}}), ShapeError, "1 and 3");
  CHECK_THROWS_WITH_PARTS(Tensor({{{1, 2}, {3, 4}}, {{5, 6}}}), ShapeError, "blocks", "2 and 1");
  CHECK_THROWS_WITH_PARTS(Tensor({{{1, 2}, {3, 4}}, {{5, 6}, {7}}}), ShapeError, "rows", "2 and 1");
  CHECK_THROWS_WITH_PARTS(Tensor({{{1, 2}, {3}}, {{5, 6}, {7, 8}}}), ShapeError, "rows", "2 and 1");
}

TEST_CASE("from_vector: dtype from the element type, shape checked") {
  Tensor d = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  CHECK(d.dtype() == float64);
  CHECK(d.shape() == Shape{3, 2});
  CHECK(d.at({2, 1}) == 6);
  CHECK(d.at({1, 0}) == 3);
  CHECK(Tensor::from_vector(std::vector<float>{1.5f}).dtype() == float32);
  CHECK(Tensor::from_vector(std::vector<int64_t>{1, 2}).dtype() == int64);
  Tensor i = Tensor::from_vector(std::vector<int>{-4, 5});  // plain ints become int64
  CHECK(i.dtype() == int64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{-4, 5});
  CHECK(Tensor::from_vector(std::vector<double>{}, {0, 3}).shape() == Shape{0, 3});
  CHECK(Tensor::from_vector(std::vector<double>{4}, {}).item() == 4);
  CHECK_THROWS_WITH_PARTS(f64({1, 2, 3}, {2, 2}), ShapeError, "from_vector", "3", "[2, 2]");
  CHECK_THROWS_WITH_PARTS(f64({1, 2, 3, 4, 5}, {2, 2}), ShapeError, "from_vector", "5", "[2, 2]");
}

TEST_CASE("xtensor arrays: from_xarray / to_xarray round trips and dtype checks") {
  xt::xarray<double> xa = {{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}};
  Tensor t = from_xarray(xa);
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.dtype() == float64);
  check_values(t, {1, 2, 3, 4, 5, 6});
  xt::xarray<double> back = to_xarray<double>(t);
  CHECK(back == xa);
  // A strided tensor comes out in its logical (row-major) order.
  xt::xarray<double> tr = to_xarray<double>(t.t());
  REQUIRE(tr.shape().size() == 2);
  CHECK(tr.shape()[0] == 3);
  CHECK(tr.shape()[1] == 2);
  CHECK(tr(0, 1) == 4.0);
  CHECK(tr(2, 0) == 3.0);
  // Results of ops convert too (to_xarray detaches).
  Tensor w = from_xarray(xa).requires_grad_();
  xt::xarray<double> doubled = to_xarray<double>(w * 2.0);
  CHECK(doubled(1, 2) == 12.0);

  xt::xarray<float> xf = {0.5f, -1.5f};
  CHECK(from_xarray(xf).dtype() == float32);
  CHECK(to_xarray<float>(from_xarray(xf)) == xf);
  xt::xarray<int64_t> xi = {{5, 6}, {7, 8}};
  Tensor ti = from_xarray(xi);
  CHECK(ti.dtype() == int64);
  CHECK(ti.to_vector<int64_t>() == std::vector<int64_t>{5, 6, 7, 8});
  CHECK(to_xarray<int64_t>(ti) == xi);
  xt::xarray<bool> xb = {true, false, true};
  Tensor tb = from_xarray(xb);
  CHECK(tb.dtype() == boolean);
  CHECK(to_xarray<bool>(tb) == xb);

  CHECK_THROWS_WITH_PARTS(to_xarray<float>(t), DtypeError, "to_xarray", "float64", "float32");
  CHECK_THROWS_WITH_PARTS(to_xarray<double>(ti), DtypeError, "to_xarray", "int64", "float64");
}

// ---------------------------------------------------------------------------------------------
// element access

TEST_CASE("item, at (negative indices, range checks), to_vector, data<T>") {
  Tensor x = arange(0, 6, 1, float64).reshape({2, 3});
  CHECK(x.at({0, 1}) == 1);
  CHECK(x.at({-1, -1}) == 5);
  CHECK(x.at({-2, 2}) == 2);
  CHECK(x.at({1, -3}) == 3);
  CHECK(x.t().at({2, 1}) == 5);             // strided view
  CHECK(x.slice(1, 1, 3).at({1, 0}) == 4);  // view with an offset
  CHECK(x.size(-1) == 3);
  CHECK(x.size(0) == 2);
  CHECK(x.dim() == 2);
  CHECK(x.numel() == 6);
  CHECK_THROWS_WITH_PARTS(x.size(2), IndexError, "size", "2");

  CHECK(x.sum().item() == 15);
  CHECK(x.slice(1, 1, 2).sum().item<int>() == 5);
  CHECK(f64({7}, {1, 1}).item() == 7);  // any one-element tensor
  CHECK(scalar_tensor(2, int64).item<int64_t>() == 2);
  CHECK(scalar_tensor(-1.5).at({}) == -1.5);
  CHECK_THROWS_WITH_PARTS(x.item(), ShapeError, "item", "[2, 3]", "6 elements");
  CHECK_THROWS_WITH_PARTS(zeros({0}).item(), ShapeError, "item", "[0]");

  CHECK_THROWS_WITH_PARTS(x.at({2, 0}), IndexError, "at", "index 2", "axis 0", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(x.at({0, 3}), IndexError, "at", "index 3", "axis 1", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(x.at({-3, 0}), IndexError, "at", "index -3", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(x.at({0, -4}), IndexError, "at", "index -4", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(x.at({0}), IndexError, "at", "1 indices", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(x.at({0, 0, 0}), IndexError, "at", "3 indices", "[2, 3]");

  // to_vector converts to the asked type and reads views in logical order.
  CHECK(x.t().to_vector<double>() == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(f64({1.9, -1.9}).to_vector<int64_t>() == std::vector<int64_t>{1, -1});
  CHECK(arange(3, int64).to_vector<float>() == std::vector<float>{0, 1, 2});
  CHECK(zeros({0, 2}).to_vector<float>().empty());

  CHECK(x.data<double>()[4] == 4);
  CHECK_THROWS_WITH_PARTS(x.data<float>(), DtypeError, "data", "float64", "float32");
}

// ---------------------------------------------------------------------------------------------
// conversion, copies, detach

TEST_CASE("to(dtype): values and the no-op case") {
  Tensor x = Tensor({1.5, -2.5, 0.0});
  Tensor d = x.to(float64);
  CHECK(d.dtype() == float64);
  check_values(d, {1.5, -2.5, 0});
  CHECK(x.to(int64).to_vector<int64_t>() == std::vector<int64_t>{1, -2, 0});  // toward zero
  Tensor b = x.to(boolean);
  CHECK(b.dtype() == boolean);
  check_values(b, {1, 1, 0});
  check_values(arange(3, int64).to(float32), {0, 1, 2});
  CHECK(x.to(float32).same(x));  // converting to its own dtype returns the same tensor
  // Conversions to integers are not recorded; to floats they are.
  Tensor w = f64({1, 2}).requires_grad_();
  CHECK_FALSE(w.to(int64).requires_grad());
  REQUIRE(w.to(float32).grad_fn());
  CHECK(w.to(float32).grad_fn()->name() == "to");
}

TEST_CASE("to(dtype) is differentiable between float32 and float64") {
  // Gradients come back in each leaf's own dtype.
  Tensor p = f64({1, 2}).requires_grad_();
  (p.to(float32) * Tensor({3.0, 4.0})).sum().backward();
  CHECK(p.grad().dtype() == float64);
  check_values(p.grad(), {3, 4});
  Tensor q = Tensor({1.0, 2.0}).requires_grad_();
  (q.to(float64) * q.to(float64)).sum().backward();
  CHECK(q.grad().dtype() == float32);
  check_values(q.grad(), {2, 4});

  // gradcheck through a float64 -> float32 -> float64 round trip. float32 rounding (~6e-8
  // relative) would swamp a 1e-6 difference step, so the step is 1e-2: f is quadratic in x, for
  // which central differences are exact, and the rounding then costs ~1e-5 at most.
  GradcheckOptions opt;
  opt.eps = 1e-2;
  opt.atol = 1e-4;
  auto f = [](const TensorList& v) { return v[0].to(float32).to(float64) * v[0]; };
  std::function<Tensor(const TensorList&)> fn = f;
  Tensor x = leaf({2, 3});
  auto r1 = gradcheck(fn, {x}, opt);
  INFO(r1.to_string());
  CHECK(r1.ok);
  CHECK(r1.checked == 36);
  auto r2 = gradgradcheck(fn, {x}, opt);
  INFO(r2.to_string());
  CHECK(r2.ok);
  CHECK(r2.checked > 0);
}

TEST_CASE("contiguous and clone; clone is differentiable") {
  Tensor base = arange(0, 6, 1, float64).reshape({2, 3});
  CHECK(base.contiguous().same(base));  // already contiguous: the same tensor
  Tensor m = base.t();
  CHECK_FALSE(m.is_contiguous());
  Tensor c = m.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.shape() == Shape{3, 2});
  check_values(c, {0, 3, 1, 4, 2, 5});
  Tensor cl = c.clone();
  CHECK_FALSE(cl.impl()->storage == c.impl()->storage);
  cl.fill_(0);
  CHECK(c.at({0, 1}) == 3);  // the clone does not share
  CHECK(base.clone().dtype() == float64);
  CHECK(arange(3, int64).clone().to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2});

  Tensor w = leaf({2, 3});
  REQUIRE(w.clone().grad_fn());
  CHECK(w.clone().grad_fn()->name() == "clone");
  check_gradients([](const TensorList& v) { return v[0].clone() * v[0]; }, {leaf({2, 3})});
  check_gradients([](const TensorList& v) { return v[0].t().contiguous() * v[0].t().clone(); },
                  {leaf({2, 3})});
  // Broadcast: a clone of a [3] tensor multiplied into a [2, 3] one.
  check_gradients([](const TensorList& v) { return v[0].clone() * v[1]; },
                  {leaf({3}, -1, 1, 2), leaf({2, 3}, -1, 1, 3)});
}

TEST_CASE("detach shares storage and the version counter, and cuts the graph") {
  Tensor w = Tensor({1.0, 2.0}).requires_grad_();
  Tensor h = w * 3.0;
  Tensor d = h.detach();
  CHECK(d.is_leaf());
  CHECK_FALSE(d.requires_grad());
  CHECK(d.impl()->storage == h.impl()->storage);
  check_values(d, {3, 6});
  uint32_t v = h.version();
  d.fill_(5.0);  // writes through the shared storage
  check_values(h, {5, 5});
  CHECK(h.version() == v + 1);
  CHECK((d * 2.0).grad_fn() == nullptr);
}

// ---------------------------------------------------------------------------------------------
// autograd flags

TEST_CASE("requires_grad_, is_leaf, grad_fn, retain_grad") {
  Tensor w = Tensor({1.0, 2.0});
  CHECK_FALSE(w.requires_grad());
  CHECK(w.is_leaf());
  CHECK(w.grad_fn() == nullptr);
  CHECK(&w.requires_grad_() == &w);
  CHECK(w.requires_grad());
  CHECK(w.is_leaf());
  w.requires_grad_(false);
  CHECK_FALSE(w.requires_grad());
  w.requires_grad_();
  Tensor y = (w * w).sum();
  CHECK(y.requires_grad());
  CHECK_FALSE(y.is_leaf());
  REQUIRE(y.grad_fn());
  CHECK(y.grad_fn()->name() == "sum");
  // Ops on tensors that do not require grad record nothing.
  CHECK(Tensor({1.0}).exp().grad_fn() == nullptr);
  {
    NoGradGuard ng;
    Tensor n = w * 2.0;
    CHECK_FALSE(n.requires_grad());
    CHECK(n.is_leaf());
  }
  // retain_grad keeps the gradient of a non-leaf.
  Tensor h = w * 3.0;
  Tensor k = w * 3.0;
  h.retain_grad();
  CHECK(h.retains_grad());
  ((h * h).sum() + k.sum()).backward();
  check_values(h.grad(), {6, 12});  // d/dh of h^2 = 2h, h = [3, 6]
  CHECK_FALSE(k.grad().defined());  // not retained
  check_values(w.grad(), {3 * 6 + 3, 3 * 12 + 3});

  CHECK_THROWS_WITH_PARTS(Tensor::from_vector(std::vector<int64_t>{1}).requires_grad_(), DtypeError,
                          "requires_grad_", "int64");
  CHECK_THROWS_WITH_PARTS((w * 2.0).requires_grad_(false), AutogradError, "requires_grad_", "mul",
                          "detach");
  CHECK_THROWS_WITH_PARTS(Tensor({1.0, 2.0}).retain_grad(), AutogradError, "retain_grad", "[2]");
}

TEST_CASE("gradients accumulate; zero_grad drops them or zeroes them in place") {
  Tensor w = f64({1, 2}).requires_grad_();
  (w * w).sum().backward();
  check_values(w.grad(), {2, 4});
  (w * 3.0).sum().backward();
  check_values(w.grad(), {5, 7});  // accumulated
  Tensor g = w.grad();
  w.zero_grad(/*set_to_none=*/false);
  REQUIRE(w.grad().defined());
  CHECK(w.grad().same(g));  // the same buffer, zeroed
  check_values(g, {0, 0});
  (w * 3.0).sum().backward();
  check_values(w.grad(), {3, 3});
  w.zero_grad();  // default: set to none
  CHECK_FALSE(w.grad().defined());
  w.zero_grad(false);  // nothing to zero: stays undefined
  CHECK_FALSE(w.grad().defined());
  (w * 4.0).sum().backward();
  check_values(w.grad(), {4, 4});
}

// ---------------------------------------------------------------------------------------------
// in-place ops

TEST_CASE("every in-place op: values, and one version bump per call") {
  struct Case {
    const char* name;
    std::function<Tensor&(Tensor&)> op;
    std::vector<double> expected;  // from x = [1, 2, 3, 4]
  };
  const std::vector<Case> cases = {
      {"add_(t, 2)",
       [](Tensor& x) -> Tensor& {
         return x.add_(f64({1, 1, 1, 1}), 2.0);
       },
       {3, 4, 5, 6}},
      {"add_(0.5)", [](Tensor& x) -> Tensor& { return x.add_(0.5); }, {1.5, 2.5, 3.5, 4.5}},
      {"sub_(t, 0.5)",
       [](Tensor& x) -> Tensor& {
         return x.sub_(f64({1, 2, 3, 4}), 0.5);
       },
       {0.5, 1, 1.5, 2}},
      {"sub_(t)",
       [](Tensor& x) -> Tensor& {
         return x.sub_(f64({4, 3, 2, 1}));
       },
       {-3, -1, 1, 3}},
      {"mul_(t)",
       [](Tensor& x) -> Tensor& {
         return x.mul_(f64({2, 0, -1, 0.5}));
       },
       {2, 0, -3, 2}},
      {"mul_(3)", [](Tensor& x) -> Tensor& { return x.mul_(3.0); }, {3, 6, 9, 12}},
      {"div_(t)",
       [](Tensor& x) -> Tensor& {
         return x.div_(f64({2, 4, 3, 8}));
       },
       {0.5, 0.5, 1, 0.5}},
      {"div_(4)", [](Tensor& x) -> Tensor& { return x.div_(4.0); }, {0.25, 0.5, 0.75, 1}},
      {"zero_", [](Tensor& x) -> Tensor& { return x.zero_(); }, {0, 0, 0, 0}},
      {"fill_", [](Tensor& x) -> Tensor& { return x.fill_(-2.5); }, {-2.5, -2.5, -2.5, -2.5}},
      {"copy_",
       [](Tensor& x) -> Tensor& {
         return x.copy_(f64({9, 8, 7, 6}));
       },
       {9, 8, 7, 6}},
      {"clamp_", [](Tensor& x) -> Tensor& { return x.clamp_(1.5, 3); }, {1.5, 2, 3, 3}},
      {"sqrt_",
       [](Tensor& x) -> Tensor& { return x.sqrt_(); },
       {1, std::sqrt(2.0), std::sqrt(3.0), 2}},
      {"addcmul_",
       [](Tensor& x) -> Tensor& {
         return x.addcmul_(f64({1, 2, 3, 4}), f64({2, 2, 2, -2}), 0.5);
       },
       {2, 4, 6, 0}},
      {"addcdiv_",
       [](Tensor& x) -> Tensor& {
         return x.addcdiv_(f64({1, 2, 3, 4}), f64({2, 2, 2, 4}), -1);
       },
       {0.5, 1, 1.5, 3}},
      {"lerp_",
       [](Tensor& x) -> Tensor& {
         return x.lerp_(f64({3, 2, 1, 0}), 0.25);
       },
       {1.5, 2, 2.5, 3}},
  };
  for (const Case& c : cases) {
    INFO(std::string(c.name));
    Tensor x = f64({1, 2, 3, 4});
    void* storage = x.impl()->storage.get();
    uint32_t v0 = x.version();
    Tensor& r = c.op(x);
    CHECK(&r == &x);                            // returns self
    CHECK(x.impl()->storage.get() == storage);  // really in place
    CHECK(x.version() == v0 + 1);
    check_values(x, c.expected);
  }
  // Chains bump once per op.
  Tensor x = f64({1, 2});
  uint32_t v0 = x.version();
  x.mul_(2.0).add_(1.0).sqrt_();
  CHECK(x.version() == v0 + 3);
  check_values(x, {std::sqrt(3.0), std::sqrt(5.0)});
}

TEST_CASE("in-place ops broadcast the operand into self and convert its dtype") {
  Tensor m = zeros({2, 3}, float64);
  m.add_(f64({1, 2, 3}, {1, 3}));
  check_values(m, {1, 2, 3, 1, 2, 3});
  m.mul_(f64({2, 3}, {2, 1}));
  check_values(m, {2, 4, 6, 3, 6, 9});
  m.div_(Tensor(2.0));  // a float32 0-d operand on a float64 tensor
  check_values(m, {1, 2, 3, 1.5, 3, 4.5});
  m.addcmul_(f64({1, -1}, {2, 1}), f64({1, 2, 3}), 2.0);  // [2,1] x [3] -> [2,3]
  check_values(m, {3, 6, 9, -0.5, -1, -1.5});
  m.lerp_(zeros({3}, float64), 0.5);
  check_values(m, {1.5, 3, 4.5, -0.25, -0.5, -0.75});
  m.copy_(Tensor({1.5, 2.5, 3.5}));  // broadcast [3] -> [2, 3], float32 -> float64
  CHECK(m.dtype() == float64);
  check_values(m, {1.5, 2.5, 3.5, 1.5, 2.5, 3.5});
  // copy_ converts to self's dtype, including integers (toward zero) and bools.
  Tensor i = zeros({2}, int64);
  i.copy_(f64({-1.7, 2.9}));
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{-1, 2});
  Tensor b = zeros({3}, boolean);
  b.copy_(f64({0, 2, -0.5}));
  check_values(b, {0, 1, 1});
  i.fill_(7);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{7, 7});
  b.zero_();
  check_values(b, {0, 0, 0});
  // Arithmetic in place needs a floating self.
  CHECK_THROWS_WITH_PARTS(i.add_(1.0), DtypeError, "add_", "int64");
  CHECK_THROWS_WITH_PARTS(b.mul_(f64({1, 1, 1})), DtypeError, "mul_", "bool");

  // The operand must broadcast *into* self: self's shape never changes.
  CHECK_THROWS_WITH_PARTS(m.copy_(zeros({4})), ShapeError, "copy_", "[4]", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(m.add_(zeros({2})), ShapeError, "add_", "[2]", "[2, 3]");
  Tensor small = f64({1, 1, 1});
  CHECK_THROWS_WITH_PARTS(small.add_(zeros({2, 3}, float64)), ShapeError, "add_", "[2, 3]", "[3]");
  CHECK_THROWS_WITH_PARTS(small.addcdiv_(ones({3}), ones({2, 3})), ShapeError, "addcdiv_", "[2, 3]",
                          "[3]");
  check_values(small, {1, 1, 1});  // untouched by the failed calls

  // Writes through views land in the base and bump the shared counter.
  Tensor base = zeros({2, 3}, float64);
  uint32_t v0 = base.version();
  base.slice(1, 1, 3).fill_(1.0);
  check_values(base, {0, 1, 1, 0, 1, 1});
  base.t().add_(f64({10, 20, 30}, {3, 1}));  // a transposed (non-contiguous) self
  check_values(base, {10, 21, 31, 10, 21, 31});
  base[1].mul_(0.0);
  check_values(base, {10, 21, 31, 0, 0, 0});
  CHECK(base.version() == v0 + 3);
}

TEST_CASE("in-place on a leaf that requires grad is refused while recording") {
  const std::vector<std::pair<const char*, std::function<void(Tensor&)>>> ops = {
      {"add_", [](Tensor& w) { w.add_(1.0); }},
      {"sub_",
       [](Tensor& w) {
         w.sub_(f64({1, 1}));
       }},
      {"mul_", [](Tensor& w) { w.mul_(2.0); }},
      {"div_",
       [](Tensor& w) {
         w.div_(f64({2, 2}));
       }},
      {"fill_", [](Tensor& w) { w.zero_(); }},
      {"fill_", [](Tensor& w) { w.fill_(3.0); }},
      {"copy_",
       [](Tensor& w) {
         w.copy_(f64({5, 6}));
       }},
      {"clamp_", [](Tensor& w) { w.clamp_(0, 1); }},
      {"sqrt_", [](Tensor& w) { w.sqrt_(); }},
      {"addcmul_",
       [](Tensor& w) {
         w.addcmul_(f64({1, 1}), f64({1, 1}));
       }},
      {"addcdiv_",
       [](Tensor& w) {
         w.addcdiv_(f64({1, 1}), f64({1, 1}));
       }},
      {"lerp_",
       [](Tensor& w) {
         w.lerp_(f64({0, 0}), 0.5);
       }},
  };
  for (const auto& [name, op] : ops) {
    INFO(std::string(name));
    Tensor w = f64({4, 9}).requires_grad_();
    uint32_t v0 = w.version();
    CHECK_THROWS_WITH_PARTS(op(w), AutogradError, name, "leaf", "[2]", "NoGradGuard");
    check_values(w, {4, 9});  // nothing written
    CHECK(w.version() == v0);
    CHECK(w.is_leaf());
    {
      NoGradGuard ng;  // what optimizers do
      op(w);
    }
    CHECK(w.version() == v0 + 1);
    CHECK(w.is_leaf());
    CHECK(w.requires_grad());
  }
  // A view of such a leaf cannot be written while recording either.
  Tensor w = f64({1, 2, 3}).requires_grad_();
  CHECK_THROWS_WITH_PARTS(w.slice(0, 0, 2).add_(1.0), AutogradError, "add_", "view", "[2]");
  check_values(w, {1, 2, 3});
  {
    NoGradGuard ng;
    w.slice(0, 0, 2).add_(1.0);
  }
  check_values(w, {2, 3, 3});
}

TEST_CASE("in-place on a tensor saved for backward: backward raises naming the op") {
  SUBCASE("input saved by log, modified under NoGradGuard") {
    Tensor w = f64({1, 2}).requires_grad_();
    Tensor h = w * 2.0;
    Tensor y = log(h).sum();
    {
      NoGradGuard ng;
      h.add_(1.0);
    }
    CHECK_THROWS_WITH_PARTS(y.backward(), AutogradError, "log", "[2]", "in-place", "version 1");
  }
  SUBCASE("output saved by exp, modified by a recorded in-place op") {
    Tensor w = f64({1, 2}).requires_grad_();
    Tensor e = exp(w);
    Tensor y = e.sum();
    e.mul_(2.0);  // recorded: e is not a leaf
    CHECK(e.grad_fn()->name() == "mul");
    CHECK_THROWS_WITH_PARTS(y.backward(), AutogradError, "exp", "[2]", "in-place");
  }
  SUBCASE("modified through a detached alias") {
    Tensor w = f64({1, 2, 3}).requires_grad_();
    Tensor h = w + 1.0;
    Tensor y = (h * h).sum();
    h.detach().zero_();
    CHECK_THROWS_WITH_PARTS(y.backward(), AutogradError, "mul", "[3]", "in-place");
  }
  SUBCASE("a graph that does not use the modified tensor is unaffected") {
    Tensor w = f64({1, 2}).requires_grad_();
    Tensor h = w * 2.0;
    Tensor untouched = (w * w).sum();
    Tensor y = log(h).sum();
    {
      NoGradGuard ng;
      h.zero_();
    }
    untouched.backward();
    check_values(w.grad(), {2, 4});
    CHECK_THROWS_AS(y.backward(), AutogradError);
  }
}

TEST_CASE("in-place ops on non-leaves are recorded and differentiate correctly") {
  // Each op reads self's old value (possibly saving it for backward) and then overwrites it; the
  // recorded op must still see the old value. Hand-checked case: y = 2x, y *= x -> dy/dx = 4x.
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor y = x * 2.0;
  y.mul_(x);
  REQUIRE(y.grad_fn());
  CHECK(y.grad_fn()->name() == "mul");
  y.sum().backward();
  check_values(x.grad(), {4, 8});
  // y = 2x clamped to [0, 3]: slope 2 inside, 0 where clipped.
  x.zero_grad();
  y = x * 2.0;
  y.clamp_(0, 3);
  y.sum().backward();
  check_values(x.grad(), {2, 0});
  // Self as its own operand: y *= y.
  x.zero_grad();
  y = x * 1.0;
  y.mul_(y);
  y.sum().backward();
  check_values(x.grad(), {2, 4});

  // Every op, in float64 with first and second derivatives, on broadcast operands:
  // a [2, 3], b [3], c [2, 1] (positive, divides).
  auto chain = [](const Tensor& a, const Tensor& b, const Tensor& c) {
    Tensor h = a.clone();
    h.mul_(b);
    h.add_(b, 2.0);
    h.sub_(a, 0.5);
    h.addcmul_(a, b, 0.3);
    h.addcdiv_(b, c, -0.2);
    h.div_(c);
    h.lerp_(a, 0.25);
    h.mul_(h);
    h.mul_(1.5).add_(1.0).sqrt_().div_(2.0);
    return h;
  };
  const double hi = 0.8;
  auto f = [&](const TensorList& v) {
    Tensor h = chain(v[0], v[1], v[2]);
    h.clamp_(-10, hi);
    Tensor k = zeros({2, 3}, float64);  // a constant buffer that takes a copy of b
    k.copy_(v[1]);
    return h * k;
  };
  TensorList in = {leaf({2, 3}, -1, 1, 11), leaf({3}, -1, 1, 12), leaf({2, 1}, 0.5, 2, 13)};
  check_gradients(f, in);
  // The clamp is active for some entries and not for others (so both branches are checked), and
  // no entry sits within the difference step of the bound.
  auto pre = values(chain(in[0], in[1], in[2]));
  CHECK(std::count_if(pre.begin(), pre.end(), [&](double p) { return p > hi; }) > 0);
  CHECK(std::count_if(pre.begin(), pre.end(), [&](double p) { return p < hi; }) > 0);
  CHECK(std::all_of(pre.begin(), pre.end(), [&](double p) { return std::abs(p - hi) > 1e-4; }));

  // A constant buffer that takes in a tensor requiring grad joins the graph.
  Tensor w = f64({1, 2}).requires_grad_();
  Tensor buf = zeros({2}, float64);
  buf.add_(w, 3.0);
  CHECK(buf.requires_grad());
  REQUIRE(buf.grad_fn());
  CHECK(buf.grad_fn()->name() == "add");
  (buf * buf).sum().backward();
  check_values(w.grad(), {18, 36});  // d/dw (3w)^2 = 18 w

  // Overwriting a non-leaf with a constant (fill_, zero_, copy_ from a constant) cuts it from the
  // graph: it no longer requires grad.
  Tensor h = w * 2.0;
  h.fill_(1.0);
  CHECK_FALSE(h.requires_grad());
  CHECK(h.is_leaf());
  check_values(h, {1, 1});
  Tensor h2 = w * 2.0;
  h2.copy_(f64({5, 6}));
  CHECK_FALSE(h2.requires_grad());
  check_values(h2, {5, 6});

  // The shape check applies while recording too (self is never enlarged).
  Tensor s = w * 1.0;
  CHECK_THROWS_WITH_PARTS(s.add_(leaf({3, 2})), ShapeError, "add_", "[3, 2]", "[2]");
  check_values(s, {1, 2});
}

TEST_CASE("div_(scalar) gives the same bits whether or not the op is recorded") {
  // x / 3 and x * (1 / 3) differ in the last bit for some x; div_ must compute x / 3 both ways.
  Tensor base = arange(1.0, 200.0, 1.0, float32);
  Tensor plain = base.clone();
  {
    NoGradGuard ng;
    plain.div_(3.0);
  }
  Tensor w = base.clone().requires_grad_();
  Tensor recorded = w * 1.0;  // a non-leaf, so div_ is recorded
  recorded.div_(3.0);
  REQUIRE(recorded.grad_fn() != nullptr);
  CHECK(recorded.to_vector<float>() == plain.to_vector<float>());
  std::vector<float> divided = base.to_vector<float>();
  for (float& v : divided) v /= 3.0f;
  CHECK(plain.to_vector<float>() == divided);
}

// ---------------------------------------------------------------------------------------------
// printing

TEST_CASE("printing: values, shape, dtype, and grad_fn or requires_grad") {
  Tensor x = Tensor({{1.0, 2.0}, {3.0, 4.0}});
  std::string s = fmt::format("{}", x);
  CHECK(s ==
        "tensor([[1.0000, 2.0000],\n"
        "        [3.0000, 4.0000]], shape=[2, 2], dtype=float32)");
  CHECK(to_string(x) == s);
  std::ostringstream os;
  os << x;
  CHECK(os.str() == s);

  Tensor w = Tensor({1.0, -2.0}).requires_grad_();
  CHECK(fmt::format("{}", w) ==
        "tensor([ 1.0000, -2.0000], shape=[2], dtype=float32, "
        "requires_grad=true)");
  CHECK(fmt::format("{}", w * 2.0) ==
        "tensor([ 2.0000, -4.0000], shape=[2], dtype=float32, grad_fn=mul)");
  CHECK(contains(fmt::format("{}", (w * w).sum()), "grad_fn=sum"));
  CHECK(contains(fmt::format("{}", matmul(w.unsqueeze(0), w.unsqueeze(1))), "grad_fn=matmul"));
  CHECK_FALSE(contains(fmt::format("{}", w.detach()), "grad"));

  // Values are right-aligned to a common width; a view prints in its logical order.
  CHECK(fmt::format("{}", f64({1, -2.5, 300, 4}, {2, 2}).t()) ==
        "tensor([[  1.0000, 300.0000],\n"
        "        [ -2.5000,   4.0000]], shape=[2, 2], dtype=float64)");
  CHECK(to_string(Tensor({1.25, 2.5}), PrintOptions{2, 1000, 3}) ==
        "tensor([1.25, 2.50], shape=[2], dtype=float32)");
  // 3-D: blocks separated by a blank line.
  CHECK(fmt::format("{}", arange(0, 8, 1, int64).reshape({2, 2, 2})) ==
        "tensor([[[0, 1],\n"
        "         [2, 3]],\n"
        "\n"
        "        [[4, 5],\n"
        "         [6, 7]]], shape=[2, 2, 2], dtype=int64)");
}

TEST_CASE("printing: nan, inf, tiny and huge values, bool, int64, 0-d, empty, undefined") {
  const double inf = std::numeric_limits<double>::infinity();
  std::string special = fmt::format("{}", f64({inf, -inf, std::nan(""), 0}));
  CHECK(special == "tensor([   inf,   -inf,    nan, 0.0000], shape=[4], dtype=float64)");
  std::string sci = to_string(f64({-1e-9, 1e10}));
  CHECK(contains(sci, "-1.0000e-09"));
  CHECK(contains(sci, "1.0000e+10"));
  CHECK(contains(fmt::format("{}", Tensor({std::nanf(""), 1.0})), "nan"));

  CHECK(fmt::format("{}", gt(Tensor({1.0, -1.0}), zeros({}))) ==
        "tensor([ true, false], shape=[2], dtype=bool)");
  CHECK(fmt::format("{}", Tensor::from_vector(std::vector<int64_t>{-3, 0, 12})) ==
        "tensor([-3,  0, 12], shape=[3], dtype=int64)");
  CHECK(fmt::format("{}", scalar_tensor(2.5)) == "tensor(2.5000, shape=[], dtype=float32)");
  CHECK(fmt::format("{}", scalar_tensor(7, int64)) == "tensor(7, shape=[], dtype=int64)");
  CHECK(fmt::format("{}", scalar_tensor(1, boolean)) == "tensor(true, shape=[], dtype=bool)");
  CHECK(fmt::format("{}", zeros({0, 3})) == "tensor([], shape=[0, 3], dtype=float32)");
  CHECK(fmt::format("{}", zeros({0}, int64)) == "tensor([], shape=[0], dtype=int64)");
  CHECK(fmt::format("{}", Tensor()) == "tensor(undefined)");
}

TEST_CASE("printing summarises large tensors with ...") {
  // The threshold is 1000 elements: at 1000 everything prints, at 1001 the edges only.
  std::string full_print = fmt::format("{}", arange(1000, int64));
  CHECK_FALSE(contains(full_print, "..."));
  CHECK(contains(full_print, " 500,"));
  std::string big = fmt::format("{}", arange(1001, int64));
  CHECK(big == "tensor([   0,    1,    2, ...,  998,  999, 1000], shape=[1001], dtype=int64)");

  std::string m = fmt::format("{}", arange(0, 2000, 1, float64).reshape({40, 50}));
  CHECK(contains(m, "shape=[40, 50]"));
  CHECK(contains(m, "   0.0000,    1.0000,    2.0000, ...,   47.0000,   48.0000,   49.0000]"));
  CHECK(contains(m, "1999.0000]]"));
  CHECK(contains(m, "\n        ...,\n"));
  CHECK_FALSE(contains(m, "1000.0000"));             // row 20 is not shown
  CHECK(std::count(m.begin(), m.end(), '\n') == 6);  // 3 rows, "...", 3 rows
  CHECK(m.size() < 600);
}

TEST_CASE("brace-initialised vectors keep their values (guards against a GCC 12 SLP miscompile)") {
  // With GCC 12 -O3 -march=native on AVX-512 and SLP vectorisation on, this read back {1, 1, 1, 1};
  // meson.build turns SLP vectorisation off for GCC < 13.
  Tensor t = Tensor::from_vector(std::vector<double>{1, 1, 0, 0}, {2, 2});
  CHECK(t.to_vector<double>() == std::vector<double>{1, 1, 0, 0});
  CHECK_THROWS_WITH_PARTS(multinomial(t, 1, true), ValueError, "multinomial", "row 1");
}
