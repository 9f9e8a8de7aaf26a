// gradcheck, gradgradcheck and check_tape: they pass on correct gradients, and when a gradient is
// wrong they fail and say where (input, output, element, analytic and numeric values; for
// check_tape the op, its input shapes and where it was recorded).
#include <cmath>

#include "support.h"

using namespace ag;
using test::leaf;

namespace {

// y = x / (1 + |x|), correct backward.
struct Softsign : Function<Softsign> {
  static constexpr const char* name = "softsign";
  static Tensor forward(FunctionContext& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return x / (abs(x) + 1.0);
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    return {g[0] / square(abs(ctx.saved_tensors()[0]) + 1.0)};
  }
};

// Same forward, backward forgets the square: dy/dx = 1/(1+|x|) instead of 1/(1+|x|)^2.
struct BadSoftsign : Function<BadSoftsign> {
  static constexpr const char* name = "bad_softsign";
  static Tensor forward(FunctionContext& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return x / (abs(x) + 1.0);
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    return {g[0] / (abs(ctx.saved_tensors()[0]) + 1.0)};
  }
};

// y = a * b^2 with a wrong gradient for b only (b instead of 2 a b).
struct BadSecondInput : Function<BadSecondInput> {
  static constexpr const char* name = "bad_second_input";
  static Tensor forward(FunctionContext& ctx, const Tensor& a, const Tensor& b) {
    ctx.save_for_backward({a, b});
    return a * b * b;
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    TensorList s = ctx.saved_tensors();
    return {g[0] * s[1] * s[1], g[0] * s[1]};
  }
};

// (sin x, cos x) with the gradient of the second output of the wrong sign.
struct BadSinCos : Function<BadSinCos> {
  static constexpr const char* name = "bad_sincos";
  static TensorList forward(FunctionContext& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return {sin(x), cos(x)};
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    Tensor x = ctx.saved_tensors()[0];
    return {g[0] * cos(x) + g[1] * sin(x)};
  }
};

// y = x^3 with a first derivative that is right but not differentiable: it uses a detached copy of
// x, so the second derivative comes out as zero.
struct DetachedCube : Function<DetachedCube> {
  static constexpr const char* name = "detached_cube";
  static Tensor forward(FunctionContext& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return x * x * x;
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    Tensor x = ctx.saved_tensors()[0].detach();
    return {g[0] * x * x * 3.0};
  }
};

// (x * scale, [x > 0]) with the mask marked non-differentiable: check_tape must ignore the mask.
struct ScaleAndMask : Function<ScaleAndMask> {
  static constexpr const char* name = "scale_and_mask";
  static TensorList forward(FunctionContext& ctx, const Tensor& x, double scale) {
    Tensor mask = (x > 0.0).to(x.dtype());
    ctx.mark_non_differentiable({mask});
    ctx.set("scale", scale);
    return {x * scale, mask};
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& g) {
    return {g[0] * ctx.get<double>("scale")};
  }
};

double softsign_grad(double x) { return 1 / std::pow(1 + std::abs(x), 2); }

// A small model: linear layer, a custom activation, another linear layer, sum of squares.
template <class Activation>
Tensor model(const TensorList& p) {
  const Tensor &x = p[0], &w1 = p[1], &b1 = p[2], &w2 = p[3];
  Tensor h = Activation::apply(matmul(x, w1) + b1);  // [4, 3] @ [3, 5] + [5]
  Tensor y = matmul(h, w2);                          // [4, 5] @ [5, 2]
  return sum(y * y);
}

TensorList model_inputs(Dtype dtype = float64) {
  TensorList p{leaf({4, 3}, -1, 1, 1), leaf({3, 5}, -1, 1, 2), leaf({5}, -1, 1, 3),
               leaf({5, 2}, -1, 1, 4)};
  for (Tensor& t : p) t = t.detach().to(dtype).requires_grad_();
  return p;
}

}  // namespace

// ---- gradcheck ----

TEST_CASE("gradcheck passes on correct ops and counts every Jacobian entry") {
  Tensor a = leaf({2, 3}, -1, 1, 1), b = leaf({2, 3}, 0.5, 2, 2);
  GradcheckReport r = gradcheck([](const TensorList& x) { return x[0] * exp(x[1]); }, {a, b});
  CHECK(r.ok);
  CHECK(static_cast<bool>(r));
  CHECK(r.checked == 6 * 12);  // 6 outputs x (6 + 6) inputs
  CHECK(r.note == "gradcheck");
  // Only inputs that require grad are checked.
  GradcheckReport r2 =
      gradcheck([](const TensorList& x) { return x[0] * exp(x[1]); }, {a, b.detach()});
  CHECK(r2.ok);
  CHECK(r2.checked == 6 * 6);
  GradcheckReport r3 =
      gradcheck([](const TensorList& x) { return Softsign::apply(x[0]); }, {leaf({3}, 0.2, 1)});
  CHECK(r3.ok);
}

TEST_CASE("gradcheck fails on a wrong custom backward and names the worst entry") {
  Tensor x = Tensor::from_vector(std::vector<double>{0.5, -2.0, 1.0}).requires_grad_();
  GradcheckReport r = gradcheck([](const TensorList& a) { return BadSoftsign::apply(a[0]); }, {x});
  CHECK_FALSE(r.ok);
  CHECK_FALSE(static_cast<bool>(r));
  CHECK(r.input == 0);
  CHECK(r.output == 0);
  REQUIRE(r.input_index.size() == 1);
  CHECK(r.output_index == r.input_index);  // off-diagonal entries are zero either way
  // Entries are ranked by error / tolerance. The diagonal errors are 2/9, 2/9 and 1/4; x = -2 has
  // the smallest true derivative (1/9), so the tightest tolerance and the worst ratio.
  CHECK(r.input_index[0] == 1);
  CHECK(r.analytic == doctest::Approx(1.0 / 3));
  CHECK(r.numeric == doctest::Approx(softsign_grad(-2.0)).epsilon(1e-6));
  std::string s = r.to_string();
  CHECK(s.find("FAILED") != std::string::npos);
  CHECK(s.find("d output 0[1] / d input 0[1]") != std::string::npos);
  CHECK(s.find("analytic 0.33333") != std::string::npos);
  CHECK(s.find("numeric 0.11111") != std::string::npos);
}

TEST_CASE("gradcheck names the input and output whose gradient is wrong") {
  GradcheckReport r =
      gradcheck([](const TensorList& x) { return BadSecondInput::apply(x[0], x[1]); },
                {leaf({2, 2}, 0.5, 1, 1), leaf({2, 2}, 0.5, 1, 2)});
  CHECK_FALSE(r.ok);
  CHECK(r.input == 1);
  CHECK(r.input_index.size() == 2);

  TensorFn both = [](const TensorList& x) { return BadSinCos::apply(x[0]); };
  GradcheckReport r2 = gradcheck(both, {leaf({3}, 0.3, 1.2)});
  CHECK_FALSE(r2.ok);
  CHECK(r2.output == 1);
  CHECK(r2.input == 0);
  CHECK(r2.analytic == doctest::Approx(-r2.numeric));  // sign flipped
}

TEST_CASE("fast mode compares random projections: passes and fails like the full check") {
  GradcheckOptions fast;
  fast.fast_mode = true;
  fast.projections = 3;
  auto good = [](const TensorList& x) { return Softsign::apply(x[0]) * x[1]; };
  GradcheckReport r = gradcheck(good, {leaf({3, 4}, 0.2, 1, 1), leaf({4}, -1, 1, 2)}, fast);
  CHECK(r.ok);
  CHECK(r.checked == 3);
  CHECK(r.note == "gradcheck (fast mode)");
  CHECK(r.to_string().find("projection") != std::string::npos);

  auto bad = [](const TensorList& x) { return BadSoftsign::apply(x[0]) * x[1]; };
  GradcheckReport f = gradcheck(bad, {leaf({3, 4}, 0.2, 1, 1), leaf({4}, -1, 1, 2)}, fast);
  CHECK_FALSE(f.ok);
  CHECK(f.input == -1);  // a projection has no single element
  CHECK(std::abs(f.analytic - f.numeric) > 1e-3);
  CHECK(f.to_string().find("FAILED") != std::string::npos);
}

TEST_CASE("float32 inputs are rejected: finite differences need float64") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();  // float32
  auto fn = [](const TensorList& a) { return exp(a[0]); };
  CHECK_THROWS_WITH_PARTS(gradcheck(fn, {x}), DtypeError, "gradcheck", "input 0", "float32",
                          "float64");
  CHECK_THROWS_WITH_PARTS(gradgradcheck(fn, {x}), DtypeError, "gradgradcheck", "float32");
  CHECK_THROWS_WITH_PARTS(gradcheck(fn, {leaf({2}).detach()}), ValueError,
                          "no input requires grad");
}

TEST_CASE("a NaN never agrees, not even with a NaN") {
  // log of a negative number: analytic and numeric are both NaN.
  Tensor x = Tensor::from_vector(std::vector<double>{-1.0, 2.0}).requires_grad_();
  GradcheckReport r = gradcheck([](const TensorList& a) { return sqrt(a[0]); }, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.input_index == std::vector<int64_t>{0});
}

TEST_CASE("gradgradcheck checks second derivatives") {
  test::check_gradients([](const TensorList& x) { return Softsign::apply(x[0]) * x[0]; },
                        {leaf({2, 3}, 0.2, 1.5)});
  // First derivative right, second wrong: gradcheck passes, gradgradcheck fails.
  auto fn = [](const TensorList& x) { return DetachedCube::apply(x[0]); };
  Tensor x = leaf({3}, 0.5, 1.5);
  CHECK(gradcheck(fn, {x}).ok);
  GradcheckReport r = gradgradcheck(fn, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.note == "gradgradcheck");
  CHECK(r.input == 0);
  // d/dx of the gradient 3 x^2 v is 6 x v; the detached backward says 0.
  CHECK(r.analytic == 0.0);
  CHECK(r.numeric != doctest::Approx(0.0));
  GradcheckOptions fast;
  fast.fast_mode = true;
  CHECK_FALSE(gradgradcheck(fn, {x}, fast).ok);
  CHECK(gradgradcheck(fn, {x}, fast).note == "gradgradcheck (fast mode)");
}

TEST_CASE("reports print with fmt") {
  GradcheckReport ok = gradcheck([](const TensorList& x) { return x[0] * 2.0; }, {leaf({2})});
  std::string s = fmt::format("{}", ok);
  CHECK(s.find("gradcheck: passed (4 entries compared)") == 0);
  // A passing report shows its closest call: a diagonal entry, not a zero off-diagonal one.
  CHECK(ok.input_index == ok.output_index);
  CHECK(ok.analytic == doctest::Approx(2.0));
  GradcheckReport bad =
      gradcheck([](const TensorList& a) { return BadSoftsign::apply(a[0]); }, {leaf({2}, 0.5, 1)});
  std::string b = fmt::format("{}", bad);
  CHECK(b.find("gradcheck: FAILED") == 0);
  CHECK(b.find("worst entry") != std::string::npos);
  CHECK(fmt::format("{:>5}", GradcheckReport{}).size() >= 5);
}

// ---- check_tape ----

TEST_CASE("check_tape names the custom op whose backward is wrong: op, shapes, where recorded") {
  TapeReport r = check_tape(model<BadSoftsign>, model_inputs());
  CHECK_FALSE(r.ok);
  CHECK_FALSE(static_cast<bool>(r));
  // matmul, add, bad_softsign, matmul, mul, sum
  CHECK(r.nodes_checked == 6);
  CHECK(r.nodes_skipped == 0);
  REQUIRE(r.nodes.size() == 6);
  for (size_t i = 1; i < r.nodes.size(); ++i)
    CHECK(r.nodes[i - 1].sequence_nr < r.nodes[i].sequence_nr);  // recording order
  CHECK(r.nodes[0].op == "matmul");
  CHECK(r.nodes[0].input_shapes == std::vector<Shape>{Shape{4, 3}, Shape{3, 5}});
  const TapeNodeReport* f = r.first_failure();
  REQUIRE(f != nullptr);
  CHECK(f->op == "bad_softsign");
  CHECK(f->input_shapes == std::vector<Shape>{Shape{4, 5}});
  CHECK(f->recorded_at.find("test_gradcheck.cpp:") != std::string::npos);
  CHECK_FALSE(f->report.ok);
  for (const TapeNodeReport& n : r.nodes)
    if (n.op != "bad_softsign") CHECK_MESSAGE(n.report.ok, n.report.to_string());
  std::string s = fmt::format("{}", r);
  CHECK(s.find("check_tape: FAILED") == 0);
  CHECK(s.find("first failure: bad_softsign") != std::string::npos);
  CHECK(s.find("[4, 5]") != std::string::npos);
  CHECK(s.find("test_gradcheck.cpp:") != std::string::npos);
}

TEST_CASE("check_tape passes a model whose ops are all right, from float32 inputs too") {
  TapeReport r = check_tape(model<Softsign>, model_inputs());
  CHECK_MESSAGE(r.ok, r.to_string());
  CHECK(r.nodes_checked == 6);
  CHECK(r.first_failure() == nullptr);
  CHECK(r.to_string().find("check_tape: passed") == 0);
  // Nodes are checked in float64 on the values they saw, whatever the model's dtype.
  TapeReport r32 = check_tape(model<Softsign>, model_inputs(float32));
  CHECK_MESSAGE(r32.ok, r32.to_string());
  CHECK(r32.nodes_checked == 6);
}

TEST_CASE("check_tape reports the first failure in recording order") {
  auto fn = [](const TensorList& p) {
    Tensor h = BadSecondInput::apply(p[0], p[1]);  // recorded first
    return BadSoftsign::apply(h).sum();
  };
  TapeReport r = check_tape(fn, {leaf({2}, 0.5, 1, 1), leaf({2}, 0.5, 1, 2)});
  CHECK_FALSE(r.ok);
  REQUIRE(r.first_failure());
  CHECK(r.first_failure()->op == "bad_second_input");
  CHECK(r.first_failure()->report.input == 1);
  int failures = 0;
  for (const TapeNodeReport& n : r.nodes) failures += n.report.ok ? 0 : 1;
  CHECK(failures == 2);
}

TEST_CASE("check_tape on a loss recorded without TapeCheckGuard checks the custom ops only") {
  TensorList p = model_inputs();
  Tensor loss = model<BadSoftsign>(p);
  TapeReport r = check_tape(loss);
  CHECK(r.nodes_checked == 1);
  CHECK(r.nodes_skipped == 5);
  REQUIRE(r.first_failure());
  CHECK(r.first_failure()->op == "bad_softsign");
  CHECK(r.to_string().find("5 skipped") != std::string::npos);
  // The same graph can still be differentiated afterwards.
  loss.backward();
  CHECK(p[1].grad().defined());
}

TEST_CASE("check_tape skips a custom node whose recorded input was modified in place") {
  Tensor x = leaf({3});
  Tensor h = x * 2.0;
  Tensor loss = BadSoftsign::apply(h).sum();  // recorded without TapeCheckGuard: h is aliased
  {
    NoGradGuard ng;
    h.add_(1.0);
  }
  TapeReport r = check_tape(loss);
  CHECK(r.nodes_checked == 0);
  CHECK(r.nodes_skipped == 3);  // mul, sum: no replay data; bad_softsign: its input changed
  CHECK(r.first_failure() == nullptr);
}

TEST_CASE("check_tape: only gradients the recorded node computed are checked; masks are ignored") {
  auto fn = [](const TensorList& p) {
    TensorList sm = ScaleAndMask::apply(p[0], 3.0);
    return (sm[0] * sm[1] * p[1]).sum();  // p[1] does not require grad: a constant of mul
  };
  Tensor c = Tensor::from_vector(std::vector<double>{1.0, -1.0, 2.0});
  TapeReport r = check_tape(fn, {leaf({3}, -1, 1, 5), c});
  CHECK_MESSAGE(r.ok, r.to_string());
  REQUIRE(r.nodes.size() == 4);  // scale_and_mask, mul, mul, sum
  CHECK(r.nodes[0].op == "scale_and_mask");
  CHECK(r.nodes[0].report.checked == 9);  // 3 x 3 for the scaled output; the mask is not checked
}

TEST_CASE("check_tape skips nodes whose output is float32 whatever the input: dtype casts") {
  auto fn = [](const TensorList& p) { return sum(Softsign::apply(p[0].to(float32)).to(float64)); };
  TapeReport r = check_tape(fn, {leaf({3})});
  CHECK_MESSAGE(r.ok, r.to_string());
  CHECK(r.nodes_skipped == 1);  // to(float32)
  CHECK(r.nodes_checked == 3);  // softsign, to(float64), sum
}

TEST_CASE("check_tape in fast mode, and its errors") {
  GradcheckOptions fast;
  fast.fast_mode = true;
  TapeReport bad = check_tape(model<BadSoftsign>, model_inputs(), fast);
  CHECK_FALSE(bad.ok);
  REQUIRE(bad.first_failure());
  CHECK(bad.first_failure()->op == "bad_softsign");
  CHECK(bad.first_failure()->report.note == "gradcheck (fast mode)");
  CHECK(check_tape(model<Softsign>, model_inputs(), fast).ok);

  CHECK_THROWS_WITH_PARTS(check_tape(leaf({2, 2})), AutogradError, "check_tape", "[2, 2]",
                          "no grad_fn");
  CHECK_THROWS_WITH_PARTS(check_tape(Tensor()), AutogradError, "check_tape", "undefined");
}
