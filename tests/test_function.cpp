// User-defined ops (function.h): recording, several outputs, non-tensor arguments, the context,
// errors naming the op, double backward, and custom ops inside bigger graphs.
#include <cmath>
#include <memory>

#include "support.h"

using namespace ag;
using test::leaf;

namespace {

// y = x / (1 + |x|);  dy/dx = 1 / (1 + |x|)^2. Backward in ag ops, so it is differentiable itself.
struct Softsign : Function<Softsign> {
  static constexpr const char* name = "softsign";
  static Tensor forward(FunctionContext& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return x / (abs(x) + 1.0);
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& grad_outputs) {
    Tensor x = ctx.saved_tensors()[0];
    return {grad_outputs[0] / square(abs(x) + 1.0)};
  }
};

// y = x^3 (no name given: the op is named after the type). Saves its output as well as its input.
struct Cube : Function<Cube> {
  static Tensor forward(FunctionContext& ctx, const Tensor& x) {
    Tensor y = x * x * x;
    ctx.save_for_backward({x, y});
    return y;
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    TensorList s = ctx.saved_tensors();
    return {g[0] * 3.0 * s[1] / s[0]};  // 3 y / x = 3 x^2
  }
};

// Two outputs: (sin x, cos x).
struct SinCos : Function<SinCos> {
  static constexpr const char* name = "sincos";
  static inline int backward_calls = 0;
  static inline bool second_grad_was_zero = false;
  static TensorList forward(FunctionContext& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return {sin(x), cos(x)};
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    ++backward_calls;
    second_grad_was_zero = g[1].defined() && sum(abs(g[1])).item() == 0.0;
    Tensor x = ctx.saved_tensors()[0];
    return {g[0] * cos(x) - g[1] * sin(x)};
  }
};

// y = alpha * x^power * w: tensors and non-tensor arguments mixed; non-tensor values go through the
// context. Records what backward was asked for.
struct ScaledPower : Function<ScaledPower> {
  static constexpr const char* name = "scaled_power";
  static inline std::vector<bool> needs_seen;
  static inline bool grad_mode_in_forward = true;
  static Tensor forward(FunctionContext& ctx, const Tensor& x, double alpha, const Tensor& w,
                        int64_t power) {
    grad_mode_in_forward = is_grad_enabled();
    ctx.save_for_backward({x, w});
    ctx.set("alpha", alpha);
    ctx.set("power", power);
    return pow(x, static_cast<double>(power)) * w * alpha;
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    needs_seen = {ctx.needs_input_grad(0), ctx.needs_input_grad(1)};
    TensorList s = ctx.saved_tensors();
    double alpha = ctx.get<double>("alpha");
    auto p = static_cast<double>(ctx.get<int64_t>("power"));
    Tensor gx, gw;
    if (ctx.needs_input_grad(0)) gx = g[0] * alpha * p * pow(s[0], p - 1) * s[1];
    if (ctx.needs_input_grad(1)) gw = g[0] * alpha * pow(s[0], p);
    return {gx, gw};
  }
};

// (2x, [x > 0]) with the mask (a float tensor) marked non-differentiable, plus an int64 output.
struct DoubleAndMask : Function<DoubleAndMask> {
  static constexpr const char* name = "double_and_mask";
  static inline bool mask_grad_was_zero = false;
  static TensorList forward(FunctionContext& ctx, const Tensor& x) {
    Tensor mask = (x > 0.0).to(x.dtype());
    ctx.mark_non_differentiable({mask});
    return {x * 2.0, mask, (x > 0.0).to(int64)};
  }
  static TensorList backward(FunctionContext&, const TensorList& g) {
    mask_grad_was_zero = sum(abs(g[1])).item() == 0.0;
    return {g[0] * 2.0};
  }
};

// out = softsign(x + b): b [n] broadcast against x [m, n]; backward returns the gradient of b in
// the broadcast shape [m, n] and leaves the summing to the engine. It saves the inputs, not z = x +
// b: a tensor made inside forward has no history, so double backward would treat it as a constant.
struct BiasSoftsign : Function<BiasSoftsign> {
  static constexpr const char* name = "bias_softsign";
  static Tensor forward(FunctionContext& ctx, const Tensor& x, const Tensor& b) {
    ctx.save_for_backward({x, b});
    Tensor z = x + b;
    return z / (abs(z) + 1.0);
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    TensorList s = ctx.saved_tensors();
    Tensor gz = g[0] / square(abs(s[0] + s[1]) + 1.0);
    return {gz, gz};
  }
};

// scale * (sum of any number of tensors of one shape): a TensorList argument.
struct SumAll : Function<SumAll> {
  static constexpr const char* name = "sum_all";
  static Tensor forward(FunctionContext& ctx, const TensorList& xs, double scale) {
    ctx.set("scale", scale);
    Tensor acc = xs[0] * scale;
    for (size_t i = 1; i < xs.size(); ++i) acc = acc + xs[i] * scale;
    return acc;
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    return TensorList(ctx.num_inputs(), g[0] * ctx.get<double>("scale"));
  }
};

// A view: y = x reshaped to `shape`. Tensor taken by value, a non-tensor argument of class type,
// and a noexcept forward.
struct ReshapeTo : Function<ReshapeTo> {
  static constexpr const char* name = "reshape_to";
  static Tensor forward(FunctionContext& ctx, Tensor x, Shape shape) noexcept {
    ctx.set("input_shape", x.shape());
    return x.reshape(shape);
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    return {g[0].reshape(ctx.get<Shape>("input_shape"))};
  }
};

// Returns its input unchanged.
struct Identity : Function<Identity> {
  static Tensor forward(FunctionContext&, const Tensor& x) { return x; }
  static TensorList backward(FunctionContext&, const TensorList& g) { return {g[0]}; }
};

// Broken backwards, each wrong in one way.
struct WrongShape : Function<WrongShape> {
  static constexpr const char* name = "wrong_shape";
  static Tensor forward(FunctionContext&, const Tensor& x) { return x * 2.0; }
  static TensorList backward(FunctionContext&, const TensorList&) { return {ones({5}, float64)}; }
};
struct WrongCount : Function<WrongCount> {
  static constexpr const char* name = "wrong_count";
  static Tensor forward(FunctionContext&, const Tensor& x) { return x * 2.0; }
  static TensorList backward(FunctionContext&, const TensorList& g) { return {g[0], g[0]}; }
};
struct AsksWrongValue : Function<AsksWrongValue> {
  static constexpr const char* name = "asks_wrong_value";
  static Tensor forward(FunctionContext& ctx, const Tensor& x) {
    ctx.set("scale", 2);  // an int
    return x * 2.0;
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    return {g[0] * ctx.get<double>("scale")};
  }
};
struct MarksForeign : Function<MarksForeign> {
  static constexpr const char* name = "marks_foreign";
  static Tensor forward(FunctionContext& ctx, const Tensor& x) {
    ctx.mark_non_differentiable({x});
    return x * 2.0;
  }
  static TensorList backward(FunctionContext&, const TensorList& g) { return {g[0] * 2.0}; }
};

}  // namespace

TEST_CASE("a one-output custom op records one node with its name, values and gradients") {
  Tensor x = Tensor::from_vector(std::vector<double>{-2.0, 0.5, 3.0}).requires_grad_();
  Tensor y = Softsign::apply(x);
  CHECK(test::allclose(y, Tensor::from_vector(std::vector<double>{-2.0 / 3, 0.5 / 1.5, 0.75})));
  REQUIRE(y.grad_fn());
  CHECK(y.grad_fn()->name() == "softsign");
  CHECK(y.grad_fn()->num_inputs() == 1);
  CHECK(y.grad_fn()->num_outputs() == 1);
  CHECK(y.grad_fn()->tape.next_edges[0].fn == x.impl()->grad_accumulator.lock());
  CHECK(y.impl()->output_nr == 0);
  CHECK(y.grad_fn()->diagnostics.recorded_at.find("test_function.cpp:") != std::string::npos);
  y.sum().backward();
  CHECK(test::allclose(x.grad(),
                       Tensor::from_vector(std::vector<double>{1.0 / 9, 1.0 / 2.25, 1.0 / 16})));
  test::check_gradients([](const TensorList& a) { return Softsign::apply(a[0]); },
                        {leaf({2, 3}, 0.2, 2.0)});
}

TEST_CASE("recorded_at is the line of the apply call") {
  Tensor x = leaf({2});
  int line = __LINE__ + 1;
  Tensor y = Softsign::apply(x);
  std::string at = y.grad_fn()->diagnostics.recorded_at;
  CHECK(at.substr(at.rfind(':') + 1) == std::to_string(line));
}

TEST_CASE("without a name the op is named after its type; outputs may be saved without a cycle") {
  std::weak_ptr<Node> node;
  {
    Tensor x = leaf({3}, 0.5, 1.5);
    Tensor y = Cube::apply(x);
    CHECK(y.grad_fn()->name() == "Cube");
    node = y.grad_fn();
    y.sum().backward();
    auto xv = x.to_vector<double>(), gv = x.grad().to_vector<double>();
    for (size_t i = 0; i < xv.size(); ++i) CHECK(gv[i] == doctest::Approx(3 * xv[i] * xv[i]));
  }
  CHECK(node.expired());  // the output saved in the node did not keep the node alive
  test::check_gradients([](const TensorList& a) { return Cube::apply(a[0]); },
                        {leaf({2, 2}, 0.5, 1.5)});
}

TEST_CASE("forward runs with grad mode off; nothing is recorded when no input requires grad") {
  Tensor x = leaf({2}, 0.5, 1.0);
  Tensor w = Tensor::from_vector(std::vector<double>{1.0, 2.0});
  ScaledPower::grad_mode_in_forward = true;
  Tensor y = ScaledPower::apply(x, 2.0, w, 2);
  CHECK_FALSE(ScaledPower::grad_mode_in_forward);
  CHECK(y.requires_grad());
  Tensor c = ScaledPower::apply(x.detach(), 2.0, w, 2);
  CHECK_FALSE(c.requires_grad());
  CHECK(c.is_leaf());
  {
    NoGradGuard ng;
    Tensor d = ScaledPower::apply(x, 2.0, w, 2);
    CHECK_FALSE(d.requires_grad());
  }
}

TEST_CASE("a two-output op: both outputs share the node; an unused output's gradient is zeros") {
  Tensor x = Tensor::from_vector(std::vector<double>{0.3, -1.2}).requires_grad_();
  TensorList sc = SinCos::apply(x);
  REQUIRE(sc.size() == 2);
  CHECK(sc[0].grad_fn() == sc[1].grad_fn());
  CHECK(sc[0].impl()->output_nr == 0);
  CHECK(sc[1].impl()->output_nr == 1);
  CHECK(sc[0].grad_fn()->num_outputs() == 2);
  CHECK(test::allclose(sc[1], cos(x.detach())));

  SinCos::second_grad_was_zero = false;
  sc[0].sum().backward();  // only sin is used
  CHECK(SinCos::second_grad_was_zero);
  CHECK(test::allclose(x.grad(), cos(x.detach())));

  // Both used: one backward call gets both gradients. d/dx (sin x + 2 cos x) = cos x - 2 sin x.
  x.zero_grad();
  SinCos::backward_calls = 0;
  TensorList sc2 = SinCos::apply(x);
  (sc2[0] + sc2[1] * 2.0).sum().backward();
  CHECK(SinCos::backward_calls == 1);
  CHECK(test::allclose(x.grad(), cos(x.detach()) - sin(x.detach()) * 2.0));

  TensorFn both = [](const TensorList& a) { return SinCos::apply(a[0]); };
  GradcheckReport r1 = gradcheck(both, {leaf({3})});
  CHECK_MESSAGE(r1.ok, r1.to_string());
  GradcheckReport r2 = gradgradcheck(both, {leaf({3})});
  CHECK_MESSAGE(r2.ok, r2.to_string());
}

TEST_CASE("non-tensor arguments reach forward; ctx values reach backward; needs_input_grad") {
  Tensor x = Tensor::from_vector(std::vector<double>{1.5, -0.5}).requires_grad_();
  Tensor w = Tensor::from_vector(std::vector<double>{2.0, 3.0});
  Tensor y = ScaledPower::apply(x, 0.5, w, 3);  // 0.5 x^3 w
  CHECK(test::allclose(
      y, Tensor::from_vector(std::vector<double>{0.5 * 3.375 * 2, -0.5 * 0.125 * 3})));
  CHECK(y.grad_fn()->num_inputs() == 2);  // tensors only
  y.sum().backward();
  CHECK(ScaledPower::needs_seen == std::vector<bool>{true, false});
  // d/dx = 1.5 x^2 w
  CHECK(test::allclose(x.grad(),
                       Tensor::from_vector(std::vector<double>{1.5 * 2.25 * 2, 1.5 * 0.25 * 3})));

  w.requires_grad_();
  ScaledPower::apply(x, 0.5, w, 3).sum().backward();
  CHECK(ScaledPower::needs_seen == std::vector<bool>{true, true});
  CHECK(test::allclose(w.grad(),
                       Tensor::from_vector(std::vector<double>{0.5 * 3.375, -0.5 * 0.125})));

  test::check_gradients([](const TensorList& a) { return ScaledPower::apply(a[0], -1.5, a[1], 2); },
                        {leaf({2, 3}, 0.5, 1.5, 1), leaf({2, 3}, -1.0, 1.0, 2)});
}

TEST_CASE("context errors name the op") {
  Tensor x = leaf({2});
  CHECK_THROWS_WITH_PARTS(AsksWrongValue::apply(x).sum().backward(), ValueError, "asks_wrong_value",
                          "'scale'", "int", "double");
  CHECK_THROWS_WITH_PARTS(MarksForeign::apply(x), ValueError, "marks_foreign",
                          "mark_non_differentiable");
  FunctionContext ctx;
  CHECK_THROWS_WITH_PARTS(ctx.needs_input_grad(0), IndexError, "needs_input_grad(0)", "0 tensor");
  CHECK_THROWS_WITH_PARTS(ctx.get<double>("alpha"), ValueError, "'alpha'", "no value");
}

TEST_CASE("mark_non_differentiable: those outputs do not require grad and get zero gradients") {
  Tensor x = Tensor::from_vector(std::vector<double>{-1.0, 2.0}).requires_grad_();
  TensorList out = DoubleAndMask::apply(x);
  CHECK(out[0].requires_grad());
  CHECK_FALSE(out[1].requires_grad());
  CHECK(out[1].is_leaf());
  CHECK_FALSE(out[2].requires_grad());  // int64: never differentiable
  CHECK(out[1].to_vector<double>() == std::vector<double>{0.0, 1.0});
  DoubleAndMask::mask_grad_was_zero = false;
  (out[0] * out[1]).sum().backward();
  CHECK(DoubleAndMask::mask_grad_was_zero);
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0.0, 2.0});
}

TEST_CASE("a saved tensor modified in place raises AutogradError naming the op") {
  Tensor x = leaf({2, 3});
  Tensor y = Softsign::apply(x);
  {
    NoGradGuard ng;
    x.mul_(2.0);
  }
  CHECK_THROWS_WITH_PARTS(y.sum().backward(), AutogradError, "softsign", "[2, 3]", "in-place");

  Tensor a = leaf({4}, 0.5, 1.0);
  Tensor c = Cube::apply(a);  // saves its output
  {
    NoGradGuard ng;
    c.add_(1.0);
  }
  CHECK_THROWS_WITH_PARTS(c.sum().backward(), AutogradError, "Cube", "[4]", "in-place");
}

TEST_CASE("a second backward through a custom op names it; retain_graph allows it") {
  Tensor x = leaf({2}, 0.5, 1.0);
  Tensor y = Softsign::apply(x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  Tensor g1 = x.grad().clone();
  y.backward();
  CHECK(test::allclose(x.grad(), g1 * 2.0));
  CHECK_THROWS_WITH_PARTS(y.backward(), AutogradError, "softsign", "second time");
}

TEST_CASE("double backward through a custom op whose backward uses ag ops") {
  // y = softsign(x): y' = 1/(1+|x|)^2, y'' = -2 sign(x) / (1+|x|)^3
  Tensor x = Tensor::from_vector(std::vector<double>{-1.5, 0.5, 2.0}).requires_grad_();
  Tensor g = grad({Softsign::apply(x).sum()}, {x}, {}, false, /*create_graph=*/true)[0];
  CHECK(g.requires_grad());
  Tensor h = grad({g.sum()}, {x})[0];
  std::vector<double> xs{-1.5, 0.5, 2.0};
  auto hv = h.to_vector<double>();
  for (size_t i = 0; i < xs.size(); ++i) {
    double a = 1 + std::abs(xs[i]);
    CHECK(hv[i] == doctest::Approx(-2.0 * (xs[i] > 0 ? 1 : -1) / (a * a * a)));
  }
  // And third order, through create_graph twice.
  Tensor x2 = leaf({3}, 0.3, 1.0);
  test::check_gradients(
      [](const TensorList& a) {
        return grad({Softsign::apply(a[0]).sum()}, {a[0]}, {}, true, true)[0];
      },
      {x2});
}

TEST_CASE("a custom op inside a bigger graph, with broadcasting summed back by the engine") {
  Tensor x = Tensor::from_vector(std::vector<double>{0.5, -1.0, 2.0, 0.0, 1.0, -0.5}, {2, 3})
                 .requires_grad_();
  Tensor b = Tensor::from_vector(std::vector<double>{0.25, 0.5, -0.25}).requires_grad_();
  Tensor y = BiasSoftsign::apply(x, b);
  y.sum().backward();
  // d/db_j = sum_i 1/(1+|x_ij + b_j|)^2
  auto xv = x.to_vector<double>();
  std::vector<double> bv{0.25, 0.5, -0.25};
  auto gb = b.grad().to_vector<double>();
  REQUIRE(b.grad().shape() == Shape{3});
  for (int j = 0; j < 3; ++j) {
    double s = 0;
    for (int i = 0; i < 2; ++i) s += 1 / std::pow(1 + std::abs(xv[i * 3 + j] + bv[j]), 2);
    CHECK(gb[j] == doctest::Approx(s));
  }
  auto model = [](const TensorList& a) {
    Tensor h = matmul(a[0], a[1]);                 // [2, 4] @ [4, 3]
    Tensor z = BiasSoftsign::apply(h, a[2]);       // bias [3] or [1, 3]
    return (Softsign::apply(z) * tanh(z)).mean();  // built-ins after custom ops
  };
  test::check_gradients(model,
                        {leaf({2, 4}, -1, 1, 1), leaf({4, 3}, -1, 1, 2), leaf({3}, -1, 1, 3)});
  test::check_gradients(model,
                        {leaf({2, 4}, -1, 1, 1), leaf({4, 3}, -1, 1, 2), leaf({1, 3}, -1, 1, 3)});
}

TEST_CASE("a TensorList argument: one gradient per element") {
  TensorList xs{leaf({2}, -1, 1, 1), leaf({2}, -1, 1, 2), leaf({2}, -1, 1, 3)};
  Tensor y = SumAll::apply(xs, 2.0);
  CHECK(y.grad_fn()->num_inputs() == 3);
  CHECK(test::allclose(y, (xs[0] + xs[1] + xs[2]) * 2.0));
  y.sum().backward();
  for (const Tensor& x : xs) CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 2});
  // A replay takes the list's tensors in order and keeps the other arguments.
  TensorList ones3(3, ones({2}, float64));
  ones3[1] = full({2}, 5.0, float64);
  CHECK(y.grad_fn()->replay(ones3)[0].to_vector<double>() == std::vector<double>{14, 14});
  test::check_gradients([](const TensorList& a) { return SumAll::apply(a, -0.5); },
                        {leaf({3}, -1, 1, 1), leaf({3}, -1, 1, 2)});
}

TEST_CASE("tensors by value, class-type arguments, views as outputs") {
  Tensor x = leaf({2, 3});
  Tensor y = ReshapeTo::apply(x, Shape{3, 2});
  CHECK(y.shape() == Shape{3, 2});
  CHECK(y.impl()->storage == x.impl()->storage);  // a view: no copy
  CHECK(x.is_leaf());
  Tensor w = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2});
  (y * w).sum().backward();
  CHECK(x.grad().shape() == Shape{2, 3});
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 2, 3, 4, 5, 6});
  TensorList again = y.grad_fn()->replay({x.detach() * 2.0});
  CHECK(test::allclose(again[0], (x.detach() * 2.0).reshape({3, 2})));
  test::check_gradients([](const TensorList& a) { return ReshapeTo::apply(a[0], Shape{6}) * a[1]; },
                        {leaf({2, 3}), leaf({6}, -1, 1, 3)});
}

TEST_CASE("replay of a node leaves out its non-differentiable outputs") {
  Tensor x = leaf({3});
  TensorList out = DoubleAndMask::apply(x);
  TensorList again = out[0].grad_fn()->replay({x.detach()});
  REQUIRE(again.size() == 3);
  CHECK(test::allclose(again[0], x.detach() * 2.0));
  CHECK_FALSE(again[1].defined());
  CHECK_FALSE(again[2].defined());
}

TEST_CASE("returning an input unchanged does not re-parent the input") {
  Tensor x = leaf({2});
  Tensor y = Identity::apply(x);
  CHECK(x.is_leaf());
  CHECK_FALSE(y.is_leaf());
  CHECK(y.grad_fn()->name() == "Identity");
  (y * 3.0).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 3});
}

TEST_CASE("a custom op's fresh outputs are not aliases of its inputs") {
  // Review claim: custom functions report every input as aliased by the output. A fresh result
  // shares no storage with the input and is no view, so an in-place op on it is recorded.
  Tensor x = leaf({3});
  Tensor y = WrongShape::apply(x);  // forward: x * 2 (backward not used here)
  CHECK(y.impl()->storage != x.impl()->storage);
  CHECK_FALSE(y.impl()->is_view);
  Tensor z = ReshapeTo::apply(leaf({2, 3}), Shape{3, 2});
  CHECK(z.impl()->is_view);  // a view of its input really is one
  Tensor twice = y * 1.0;
  y.mul_(3.0);  // a non-leaf, not a view: recorded, not refused
  CHECK(y.grad_fn()->name() == "mul");
  CHECK(test::allclose(y, twice * 3.0));
  // An input returned as is gets a fresh handle: the input keeps its own identity.
  Tensor i = Identity::apply(x);
  CHECK_FALSE(i.same(x));
  CHECK(x.is_leaf());
}

TEST_CASE("a backward returning a wrong shape or count raises AutogradError naming the op") {
  Tensor x = leaf({2, 3});
  CHECK_THROWS_WITH_PARTS(WrongShape::apply(x).sum().backward(), AutogradError, "wrong_shape",
                          "[5]", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(WrongCount::apply(x).sum().backward(), AutogradError, "wrong_count",
                          "2 gradients", "1 tensor input");
}

TEST_CASE("custom nodes can replay their forward; an in-place change of an input stops that") {
  Tensor x = leaf({3}, 0.5, 1.0);
  Tensor w = leaf({3}, 0.5, 1.0, 7);
  Tensor y = ScaledPower::apply(x, 2.0, w, 2);
  const Node& node = *y.grad_fn();
  REQUIRE(node.can_replay());
  REQUIRE(node.tape_check.replay_inputs.size() == 2);
  TensorList again = node.replay({x.detach() * 2.0, w.detach()});
  CHECK(test::allclose(again[0], x.detach() * x.detach() * w.detach() * 8.0));
  {
    NoGradGuard ng;
    x.add_(1.0);
  }
  CHECK_FALSE(node.can_replay());
  // Under a TapeCheckGuard the inputs are copied, so later writes do not matter.
  Tensor y2;
  {
    TapeCheckGuard tc;
    y2 = ScaledPower::apply(x, 2.0, w, 2);
  }
  {
    NoGradGuard ng;
    x.add_(1.0);
  }
  CHECK(y2.grad_fn()->can_replay());
}
