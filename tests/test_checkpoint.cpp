// Activation checkpointing (autograd/checkpoint.h): the same gradients as without it, captured
// parameters, random state, higher-order gradients, the memory it saves, and its errors.
#include "support.h"

using namespace ag;

namespace {

// A small MLP whose weights are captured by the function, not passed to it (as modules do).
struct MLP {
  std::vector<Tensor> w, b;
  MLP(int64_t width, int layers, Dtype dtype = float32, uint64_t seed = 7) {
    Generator g(seed);
    for (int i = 0; i < layers; ++i) {
      w.push_back(normal({width, width}, 0, 0.5, dtype, &g).requires_grad_());
      b.push_back(normal({width}, 0, 0.1, dtype, &g).requires_grad_());
    }
  }
  Tensor layer(const Tensor& x, size_t i) const { return tanh(add(matmul(x, w[i]), b[i])); }
  Tensor forward(const Tensor& x) const {
    Tensor h = x;
    for (size_t i = 0; i < w.size(); ++i) h = layer(h, i);
    return h;
  }
  TensorList params() const {
    TensorList p = w;
    p.insert(p.end(), b.begin(), b.end());
    return p;
  }
  void zero_grad() const {
    for (Tensor t : params()) t.set_grad(Tensor());
  }
};

// A float32 tensor of values in [-1, 1), a leaf requiring grad unless `grad` is false.
Tensor leaf32(const Shape& shape, uint64_t seed, bool grad = true) {
  Generator g(seed);
  Tensor t = uniform(shape, -1, 1, float32, &g);
  return grad ? t.requires_grad_() : t;
}

std::vector<float> grad_of(const Tensor& t) {
  REQUIRE(t.grad().defined());
  return t.grad().to_vector<float>();
}

}  // namespace

TEST_CASE("checkpoint gives bit-identical gradients to the input and the captured weights") {
  MLP mlp(16, 3);
  Generator g(1);
  Tensor x = normal({8, 16}, 0, 1, float32, &g).requires_grad_();
  auto run = [&](bool ckpt) {
    mlp.zero_grad();
    x.set_grad(Tensor());
    Tensor h =
        ckpt ? checkpoint([&](const Tensor& in) { return mlp.forward(in); }, x) : mlp.forward(x);
    square(h).sum().backward();
    std::vector<std::vector<float>> grads{grad_of(x)};
    for (const Tensor& p : mlp.params()) grads.push_back(grad_of(p));
    return grads;
  };
  auto plain = run(false), ckpt = run(true);
  CHECK(plain == ckpt);
}

TEST_CASE("checkpoint: several inputs and outputs, integer outputs, an input returned as is") {
  Tensor a = test::leaf({3, 4}, -1, 1, 1), b = test::leaf({4}, -1, 1, 2);
  Tensor w = test::leaf({4, 4}, -1, 1, 3);
  auto fn = [&](const TensorList& in) -> TensorList {
    Tensor y = matmul(mul(in[0], in[1]), w);
    return {y, argmax(y, 1), in[1], exp(in[0])};
  };
  TensorList ys = checkpoint(fn, {a, b});
  REQUIRE(ys.size() == 4);
  CHECK(ys[0].requires_grad());
  CHECK(ys[0].grad_fn()->name() == "checkpoint");
  CHECK_FALSE(ys[1].requires_grad());
  CHECK(ys[1].dtype() == int64);
  CHECK_FALSE(ys[2].same(b));  // a fresh handle: b keeps being a leaf
  CHECK(b.is_leaf());
  add(add(sum(ys[0]), sum(square(ys[2]))), sum(ys[3])).backward();
  TensorList with = {a.grad(), b.grad(), w.grad()};
  for (Tensor t : {a, b, w}) t.set_grad(Tensor());
  TensorList zs = fn({a, b});
  add(add(sum(zs[0]), sum(square(zs[2]))), sum(zs[3])).backward();
  CHECK(test::values(with[0]) == test::values(a.grad()));
  CHECK(test::values(with[1]) == test::values(b.grad()));
  CHECK(test::values(with[2]) == test::values(w.grad()));
}

TEST_CASE("checkpoint: float64 gradcheck and gradgradcheck, weights captured") {
  // The weights are gradcheck inputs, but fn reaches them by capture, not through its inputs.
  Tensor x = test::leaf({3, 4}, -1, 1, 4), w1 = test::leaf({4, 5}, -1, 1, 5);
  Tensor w2 = test::leaf({5, 2}, -1, 1, 6);
  auto f = [](const TensorList& in) {
    // Captured by value: fn runs again in the backward, after f has returned.
    Tensor w1 = in[1], w2 = in[2];
    Tensor h =
        checkpoint([w1, w2](const Tensor& t) { return matmul(tanh(matmul(t, w1)), w2); }, in[0]);
    return sum(mul(h, h));
  };
  test::check_gradients(f, {x, w1, w2});
}

TEST_CASE("checkpoint: create_graph gives the second derivatives of the plain function") {
  Tensor x = test::leaf({2, 3}, -1, 1, 7), w = test::leaf({3, 3}, -1, 1, 8);
  auto fn = [&](const Tensor& t) { return sin(matmul(t, w)); };
  auto second = [&](bool ckpt) {
    Tensor y = ckpt ? checkpoint(fn, x) : fn(x);
    TensorList g = grad({sum(pow(y, 3.0))}, {x, w}, {}, false, /*create_graph=*/true);
    return grad({add(sum(square(g[0])), sum(g[1]))}, {x, w});
  };
  // Equal up to rounding: the double backward sums some contributions in another order.
  TensorList plain = second(false), ckpt = second(true);
  CHECK(test::allclose(plain[0], ckpt[0], 1e-14, 1e-13));
  CHECK(test::allclose(plain[1], ckpt[1], 1e-14, 1e-13));
  CHECK_FALSE(test::allclose(plain[1], zeros_like(plain[1]), 1e-3, 0));
}

TEST_CASE("checkpoint: dropout draws the same masks in the recomputation") {
  MLP mlp(16, 2);
  Generator own(11);
  Generator x_gen(2);
  Tensor x = normal({8, 16}, 0, 1, float32, &x_gen).requires_grad_();
  // One dropout draws from the default generator, the other from `own`.
  auto fn = [&](const Tensor& t) {
    Tensor h = dropout(mlp.layer(t, 0), 0.5, true);
    return dropout(mlp.layer(h, 1), 0.3, true, &own);
  };
  auto run = [&](int mode) {  // 0 plain, 1 checkpoint listing `own`, 2 not listing it
    mlp.zero_grad();
    manual_seed(5);
    own.seed(11);
    CheckpointOptions o;
    if (mode == 1) o.generators = {&own};
    Tensor h = mode == 0 ? fn(x) : checkpoint(fn, x, o);
    sum(h).backward();
    // The generators continue after the backward as they would without checkpointing.
    std::vector<float> next = rand({4}).to_vector<float>(),
                       own_next = rand({4}, float32, &own).to_vector<float>();
    std::vector<std::vector<float>> r{grad_of(mlp.w[0]), grad_of(mlp.w[1]), next, own_next};
    return r;
  };
  auto plain = run(0), listed = run(1), unlisted = run(2);
  CHECK(plain == listed);
  // `own` not listed: its second draw differs from the first, and so does w[1]'s gradient.
  CHECK(plain[1] != unlisted[1]);
}

TEST_CASE("checkpoint: preserve_rng_state = false lets the recomputation draw new masks") {
  MLP mlp(16, 1);
  Tensor x = leaf32({8, 16}, 21, false);
  auto fn = [&](const Tensor& t) { return dropout(mlp.layer(t, 0), 0.5, true); };
  auto grad_w = [&](bool preserve) {
    mlp.zero_grad();
    manual_seed(8);
    sum(checkpoint(fn, x, {.preserve_rng_state = preserve})).backward();
    return grad_of(mlp.w[0]);
  };
  mlp.zero_grad();
  manual_seed(8);
  sum(fn(x)).backward();
  std::vector<float> plain = grad_of(mlp.w[0]);
  CHECK(grad_w(true) == plain);
  CHECK(grad_w(false) != plain);
}

TEST_CASE("checkpoint: retain_graph, accumulation into .grad, and a second backward's error") {
  MLP mlp(4, 2);
  Tensor x = leaf32({2, 4}, 9);
  Tensor loss = sum(checkpoint([&](const Tensor& t) { return mlp.forward(t); }, x));
  loss.backward({}, /*retain_graph=*/true);
  std::vector<float> once = grad_of(mlp.w[0]);
  loss.backward();
  std::vector<float> twice = grad_of(mlp.w[0]);
  REQUIRE(once.size() == twice.size());
  for (size_t i = 0; i < once.size(); ++i) CHECK(twice[i] == 2 * once[i]);
  CHECK_THROWS_WITH_PARTS(loss.backward(), AutogradError, "checkpoint", "second time");
}

TEST_CASE("checkpoint: grad() returns the gradients and writes no .grad") {
  MLP mlp(4, 2);
  Tensor x = leaf32({3, 4}, 10);
  Tensor y = checkpoint([&](const Tensor& t) { return mlp.forward(t); }, x);
  TensorList g = grad({sum(y)}, {mlp.w[1], x});
  CHECK_FALSE(mlp.w[1].grad().defined());
  CHECK_FALSE(mlp.w[0].grad().defined());
  TensorList ref = grad({sum(mlp.forward(x))}, {mlp.w[1], x});
  CHECK(g[0].to_vector<float>() == ref[0].to_vector<float>());
  CHECK(g[1].to_vector<float>() == ref[1].to_vector<float>());
}

TEST_CASE("checkpoint: a grad-ready hook runs once, with the complete gradient") {
  // w is used inside the checkpoint and after it: the hook must see both contributions.
  Tensor w = leaf32({3, 3}, 12);
  Tensor x = leaf32({2, 3}, 13, false);
  std::vector<std::vector<float>> seen;
  GradReadyHandle h =
      register_grad_ready_hook(w, [&](const Tensor& leaf) { seen.push_back(grad_of(leaf)); });
  Tensor y = checkpoint([&](const Tensor& t) { return tanh(matmul(t, w)); }, x);
  sum(matmul(y, w)).backward();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == grad_of(w));
  h.remove();
  w.set_grad(Tensor());
  sum(matmul(tanh(matmul(x, w)), w)).backward();
  CHECK(seen[0] == grad_of(w));
}

TEST_CASE("checkpoint: nested checkpoints") {
  MLP mlp(6, 4);
  Tensor x = leaf32({2, 6}, 14);
  auto inner = [&](size_t i) {
    return [&mlp, i](const Tensor& t) { return mlp.layer(mlp.layer(t, i), i + 1); };
  };
  Tensor y =
      checkpoint([&](const Tensor& t) { return checkpoint(inner(2), checkpoint(inner(0), t)); }, x);
  sum(y).backward();
  std::vector<float> gx = grad_of(x), gw = grad_of(mlp.w[0]);
  x.set_grad(Tensor());
  mlp.zero_grad();
  sum(mlp.forward(x)).backward();
  CHECK(gx == grad_of(x));
  CHECK(gw == grad_of(mlp.w[0]));
}

TEST_CASE("checkpoint keeps fewer bytes alive between forward and backward") {
  MLP mlp(64, 8);
  Generator g(3);
  Tensor x = normal({256, 64}, 0, 1, float32, &g).requires_grad_();
  auto held = [&](bool ckpt) {
    int64_t before = memory_stats().live_storage_bytes;
    Tensor loss =
        sum(ckpt ? checkpoint([&](const Tensor& t) { return mlp.forward(t); }, x) : mlp.forward(x));
    int64_t bytes = memory_stats().live_storage_bytes - before;
    loss.backward();
    return bytes;
  };
  int64_t plain = held(false), ckpt = held(true);
  MESSAGE("bytes held after the forward: " << plain << " without, " << ckpt << " with");
  // Without: each layer keeps about two [256, 64] float32 tensors (64 KiB each).
  CHECK(plain >= 8 * 256 * 64 * 4);
  CHECK(ckpt * 4 < plain);
}

TEST_CASE("checkpoint: without recording or without anything requiring grad, no node") {
  Tensor x = test::leaf({2, 2}, -1, 1, 15);
  auto fn = [](const Tensor& t) { return exp(t); };
  {
    NoGradGuard off;
    Tensor y = checkpoint(fn, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(test::values(y) == test::values(exp(x)));
  }
  Tensor c = x.detach();
  Tensor y = checkpoint(fn, c);
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
}

TEST_CASE("checkpoint: errors") {
  Tensor x = test::leaf({2, 2}, -1, 1, 16);
  CHECK_THROWS_WITH_PARTS(checkpoint(CheckpointFn(), {x}), ValueError, "checkpoint", "empty");
  CHECK_THROWS_WITH_PARTS(checkpoint([](const TensorList&) { return TensorList{}; }, {x}),
                          AutogradError, "checkpoint", "no tensors");
  CHECK_THROWS_WITH_PARTS(checkpoint([](const TensorList&) { return TensorList{Tensor()}; }, {x}),
                          AutogradError, "checkpoint", "undefined tensor as output 0");
  CHECK_THROWS_WITH_PARTS(checkpoint([](const TensorList& t) { return t; }, {x, Tensor()}),
                          ValueError, "checkpoint", "input 1 of 2 is undefined");
}

TEST_CASE("checkpoint: errors when the recomputation differs from the forward") {
  Tensor x = test::leaf({2, 2}, -1, 1, 17), w = test::leaf({2, 2}, -1, 1, 18);
  Tensor v = test::leaf({2, 2}, -1, 1, 19);
  int calls = 0;
  // The second run uses another weight.
  Tensor y = checkpoint([&](const Tensor& t) { return mul(t, calls++ == 0 ? w : v); }, x);
  CHECK_THROWS_WITH_PARTS(sum(y).backward(), AutogradError, "checkpoint", "did not use");
  calls = 0;
  Tensor z = checkpoint(
      [&](const Tensor& t) { return calls++ == 0 ? mul(t, w) : sum(mul(t, w), Axes{0}); }, x);
  CHECK_THROWS_WITH_PARTS(sum(z).backward(), ShapeError, "checkpoint", "output 0");
  // The input modified in place between forward and backward.
  Tensor a = mul(x, 2.0);
  Tensor u = checkpoint([&](const Tensor& t) { return mul(t, w); }, a);
  {
    NoGradGuard off;
    a.add_(1.0);
  }
  CHECK_THROWS_WITH_PARTS(sum(u).backward(), AutogradError, "checkpoint", "in-place");
}

TEST_CASE("checkpoint: forward-mode tangents are refused") {
  Tensor x = test::leaf({3}, -1, 1, 20);
  fwd::DualLevel level;
  Tensor d = fwd::make_dual(x, ones_like(x));
  CHECK_THROWS_WITH_PARTS(checkpoint([](const Tensor& t) { return exp(t); }, d), AutogradError,
                          "checkpoint", "forward-mode");
}
