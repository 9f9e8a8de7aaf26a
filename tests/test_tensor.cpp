// The Tensor itself: factories, nested initializer lists, vectors and xtensor arrays, element
// access, dtype conversion, autograd flags, in-place ops with their version counters, and printing.
#include <cmath>
#include <limits>

#include "support.h"

using namespace ag;

namespace {
std::vector<double> values(const Tensor& t) { return t.to(float64).to_vector<double>(); }
}  // namespace

TEST_CASE("factories: zeros, ones, full, arange, linspace, eye, scalar_tensor, *_like") {
  CHECK(values(zeros({2, 2})) == std::vector<double>(4, 0.0));
  CHECK(values(ones({3}, float64)) == std::vector<double>(3, 1.0));
  CHECK(values(full({2}, 2.5)) == std::vector<double>{2.5, 2.5});
  CHECK(zeros({2}).dtype() == float32);
  CHECK(values(arange(0, 1, 0.25)) == std::vector<double>{0, 0.25, 0.5, 0.75});
  CHECK(values(arange(4)) == std::vector<double>{0, 1, 2, 3});
  CHECK(arange(3, int64).dtype() == int64);
  CHECK(values(linspace(0, 1, 5, float64)) == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
  CHECK(values(eye(2)) == std::vector<double>{1, 0, 0, 1});
  Tensor s = scalar_tensor(3.0, float64);
  CHECK(s.shape() == Shape{});
  CHECK(s.item() == 3.0);
  Tensor like = full_like(zeros({2, 3}, float64), 7);
  CHECK(like.dtype() == float64);
  CHECK(like.shape() == Shape{2, 3});
  CHECK(values(ones_like(like)) == std::vector<double>(6, 1.0));
  CHECK(values(zeros_like(like)) == std::vector<double>(6, 0.0));
  CHECK(empty_like(like).shape() == Shape{2, 3});
  CHECK(zeros({0, 4}).numel() == 0);
}

TEST_CASE("nested initializer lists, vectors, xtensor arrays") {
  Tensor a = Tensor({{1, 2, 3}, {4, 5, 6}});
  CHECK(a.shape() == Shape{2, 3});
  CHECK(a.dtype() == float32);
  CHECK(a.at({1, 2}) == 6);
  Tensor b = Tensor({{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}});
  CHECK(b.shape() == Shape{2, 2, 2});
  CHECK(b.at({1, 0, 1}) == 6);
  CHECK(Tensor({1.5, 2.5}).shape() == Shape{2});
  CHECK_THROWS_WITH_PARTS(Tensor({{1, 2}, {3}}), ShapeError, "2", "1");
  Tensor v = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2});
  CHECK(v.dtype() == float64);
  CHECK(v.at({2, 1}) == 6);
  CHECK(Tensor::from_vector(std::vector<int64_t>{1, 2}).dtype() == int64);
  CHECK_THROWS_WITH_PARTS(Tensor::from_vector(std::vector<double>{1, 2, 3}, {2, 2}), ShapeError,
                          "from_vector", "3", "[2, 2]");
  xt::xarray<double> xa = {{1.0, 2.0}, {3.0, 4.0}};
  Tensor t = from_xarray(xa);
  CHECK(t.shape() == Shape{2, 2});
  CHECK(t.dtype() == float64);
  xt::xarray<double> back = to_xarray<double>(t.t());  // strided: copied row-major
  CHECK(back(0, 1) == 3.0);
  CHECK(back.shape()[0] == 2);
  CHECK_THROWS_WITH_PARTS(to_xarray<float>(t), DtypeError, "to_xarray", "float64", "float32");
  xt::xarray<int64_t> xi = {5, 6, 7};
  CHECK(from_xarray(xi).to_vector<int64_t>() == std::vector<int64_t>{5, 6, 7});
}

TEST_CASE("element access: item, at with negative indices, to_vector; errors") {
  Tensor x = arange(0, 6, 1, float64).reshape({2, 3});
  CHECK(x.at({-1, -1}) == 5);
  CHECK(x.at({0, 1}) == 1);
  CHECK(x.t().at({2, 1}) == 5);
  CHECK(x.size(-1) == 3);
  CHECK(x.dim() == 2);
  CHECK(x.numel() == 6);
  CHECK(x.sum().item() == 15);
  CHECK(x.slice(1, 1, 2).sum().item<int>() == 5);
  CHECK_THROWS_WITH_PARTS(x.item(), ShapeError, "item", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(x.at({2, 0}), IndexError, "[2, 3]");
  CHECK_THROWS_AS(x.at({0}), IndexError);
  CHECK_THROWS_WITH_PARTS(x.data<float>(), DtypeError, "float64");
}

TEST_CASE("to(dtype) converts, differentiably between float32 and float64; contiguous and clone") {
  Tensor x = Tensor({1.5, -2.5});
  Tensor d = x.to(float64);
  CHECK(d.dtype() == float64);
  CHECK(values(d) == std::vector<double>{1.5, -2.5});
  CHECK(x.to(int64).to_vector<int64_t>() == std::vector<int64_t>{1, -2});
  CHECK(x.to(float32).same(x));  // no-op conversion returns the same tensor
  // The gradient flows back through a conversion, in the input's dtype.
  Tensor p = Tensor::from_vector(std::vector<double>{1, 2}).requires_grad_();
  (p.to(float32) * Tensor({3.0, 4.0})).sum().backward();
  CHECK(p.grad().dtype() == float64);
  CHECK(values(p.grad()) == std::vector<double>{3, 4});
  Tensor m = arange(0, 6, 1, float64).reshape({2, 3}).t();
  Tensor c = m.contiguous();
  CHECK(c.is_contiguous());
  CHECK(values(c) == std::vector<double>{0, 3, 1, 4, 2, 5});
  Tensor cl = c.clone();
  cl.fill_(0);
  CHECK(c.at({0, 1}) == 3);  // clone does not share
  test::check_gradients(
      [](const TensorList& v) { return v[0].t().contiguous() * v[0].t().clone(); },
      {test::leaf({2, 3})});
}

TEST_CASE("autograd flags: requires_grad, leaves, grad_fn, detach, retain_grad, zero_grad") {
  Tensor w = Tensor({1.0, 2.0});
  CHECK_FALSE(w.requires_grad());
  CHECK(w.is_leaf());
  w.requires_grad_();
  Tensor y = (w * w).sum();
  CHECK(y.requires_grad());
  CHECK_FALSE(y.is_leaf());
  REQUIRE(y.grad_fn());
  CHECK(y.grad_fn()->name() == "sum");
  Tensor h = w * 3.0;
  h.retain_grad();
  (h * h).sum().backward();
  CHECK(values(h.grad()) == std::vector<double>{6, 12});
  CHECK(values(w.grad()) == std::vector<double>{18, 36});
  w.zero_grad(/*set_to_none=*/false);
  CHECK(values(w.grad()) == std::vector<double>{0, 0});
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
  Tensor dt = h.detach();
  CHECK(dt.is_leaf());
  CHECK_FALSE(dt.requires_grad());
  CHECK(dt.impl()->storage == h.impl()->storage);
  // Integer tensors cannot require gradients.
  CHECK_THROWS_AS(Tensor::from_vector(std::vector<int64_t>{1}).requires_grad_(), DtypeError);
}

TEST_CASE("in-place ops: values and version counters") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4});
  uint32_t v0 = x.version();
  x.add_(Tensor::from_vector(std::vector<double>{1, 1, 1, 1}), 2.0);
  CHECK(values(x) == std::vector<double>{3, 4, 5, 6});
  x.add_(1.0);
  x.sub_(Tensor::from_vector(std::vector<double>{1, 1, 1, 1}), 0.5);
  CHECK(values(x) == std::vector<double>{3.5, 4.5, 5.5, 6.5});
  x.mul_(2.0).div_(Tensor(2.0).to(float64));  // a 0-d tensor broadcasts
  CHECK(values(x) == std::vector<double>{3.5, 4.5, 5.5, 6.5});
  x.mul_(Tensor::from_vector(std::vector<double>{2, 2, 2, 2})).div_(7.0);
  CHECK(values(x) == std::vector<double>{1, 9.0 / 7, 11.0 / 7, 13.0 / 7});
  x.fill_(4.0).sqrt_();
  CHECK(values(x) == std::vector<double>{2, 2, 2, 2});
  x.clamp_(0, 1.5);
  CHECK(values(x) == std::vector<double>{1.5, 1.5, 1.5, 1.5});
  Tensor a = Tensor::from_vector(std::vector<double>{1, 2, 3, 4});
  x.addcmul_(a, a, 0.5);  // 1.5 + 0.5 a^2
  CHECK(values(x) == std::vector<double>{2, 3.5, 6, 9.5});
  x.addcdiv_(a, a, -1.0);  // - 1
  CHECK(values(x) == std::vector<double>{1, 2.5, 5, 8.5});
  x.lerp_(zeros({4}, float64), 0.5);
  CHECK(values(x) == std::vector<double>{0.5, 1.25, 2.5, 4.25});
  x.copy_(Tensor({9.0}));  // broadcast and convert float32 -> float64
  CHECK(values(x) == std::vector<double>{9, 9, 9, 9});
  x.zero_();
  CHECK(values(x) == std::vector<double>(4, 0.0));
  CHECK(x.version() >= v0 + 14);
  // Writes through a view show in the base and bump the shared counter.
  Tensor m = zeros({2, 3}, float64);
  uint32_t mv = m.version();
  m.slice(1, 1, 3).fill_(1.0);
  CHECK(values(m) == std::vector<double>{0, 1, 1, 0, 1, 1});
  CHECK(m.version() > mv);
  CHECK_THROWS_WITH_PARTS(m.copy_(zeros({4})), ShapeError, "[4]", "[2, 3]");
}

TEST_CASE("modifying a tensor saved for backward is caught and names the op") {
  Tensor w = Tensor({1.0, 2.0}).requires_grad_();
  Tensor h = w * 2.0;
  Tensor y = (h.exp()).sum();  // exp saves its output
  Tensor e = h.exp();
  Tensor z = (e * e).sum();
  {
    NoGradGuard ng;
    e.add_(1.0);
  }
  CHECK_THROWS_WITH_PARTS(z.backward(), AutogradError, "mul");
  y.backward();  // untouched graph still works
  CHECK(w.grad().defined());
  // In-place on a leaf that requires grad is refused while recording.
  CHECK_THROWS_AS(w.add_(1.0), AutogradError);
  {
    NoGradGuard ng;
    w.add_(1.0);  // what optimizers do
  }
  CHECK(values(w) == std::vector<double>{2, 3});
}

TEST_CASE("printing shows values, shape, dtype, and grad_fn or requires_grad") {
  Tensor x = Tensor({{1.0, 2.0}, {3.0, 4.0}});
  std::string s = fmt::format("{}", x);
  CHECK(s.find("1.0000") != std::string::npos);
  CHECK(s.find("4.0000") != std::string::npos);
  CHECK(s.find("shape=[2, 2]") != std::string::npos);
  CHECK(s.find("dtype=float32") != std::string::npos);
  CHECK(s.find("grad_fn") == std::string::npos);
  Tensor w = Tensor({1.0}).requires_grad_();
  CHECK(fmt::format("{}", w).find("requires_grad=true") != std::string::npos);
  CHECK(fmt::format("{}", w * 2.0).find("grad_fn=mul") != std::string::npos);
  std::string big = fmt::format("{}", arange(0, 5000, 1, float64));
  CHECK(big.find("...") != std::string::npos);
  CHECK(big.find("4999.0000") != std::string::npos);
  CHECK(big.size() < 300);
  std::string special = to_string(Tensor::from_vector(
      std::vector<double>{std::numeric_limits<double>::infinity(), std::nan(""), -1e-9}));
  CHECK(special.find("inf") != std::string::npos);
  CHECK(special.find("nan") != std::string::npos);
  CHECK(special.find("e-09") != std::string::npos);
  CHECK(fmt::format("{}", gt(Tensor({1.0, -1.0}), zeros({}))).find("true, false") !=
        std::string::npos);
  CHECK(fmt::format("{}", arange(3, int64)).find("[0, 1, 2]") != std::string::npos);
  CHECK(fmt::format("{}", scalar_tensor(2.5)).find("tensor(2.5000, shape=[]") != std::string::npos);
  CHECK(fmt::format("{}", zeros({0, 3})).find("tensor([], shape=[0, 3]") != std::string::npos);
  CHECK(fmt::format("{}", Tensor()) == "tensor(undefined)");
  std::ostringstream os;
  os << x;
  CHECK(os.str() == s);
}
