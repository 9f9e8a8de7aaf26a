// Gradient-ready hooks (engine.h): when they run, what .grad holds then, how they are removed.
#include <stdexcept>

#include "support.h"

using namespace ag;

TEST_CASE("a grad-ready hook runs once per backward with the leaf's complete gradient") {
  Tensor x = Tensor({1.0, -2.0}).requires_grad_();
  std::vector<std::vector<float>> seen;
  GradReadyHandle h = register_grad_ready_hook(x, [&](const Tensor& leaf) {
    CHECK(leaf.same(x));
    seen.push_back(leaf.grad().to_vector<float>());
  });
  // Three consumers of x: the hook must see the sum 3 + 2x + 1, not a partial one.
  (x * 3.0 + x * x + x).sum().backward();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == std::vector<float>{6, 0});
  // A second backward adds to .grad; the hook sees the accumulated value.
  (x * 2.0).sum().backward();
  REQUIRE(seen.size() == 2);
  CHECK(seen[1] == std::vector<float>{8, 2});
}

TEST_CASE("a grad-ready hook fires before backward reaches the layers below") {
  // x -> w1 -> tanh -> h -> w2 -> loss: w2's gradient is final once the matmul with w2 has run,
  // before the tanh's backward has run (which writes h.grad, as h retains its gradient) and long
  // before w1's gradient is computed.
  Generator g(3);
  Tensor x = normal({4, 3}, 0, 1, float32, &g);
  Tensor w1 = normal({3, 5}, 0, 1, float32, &g).requires_grad_();
  Tensor w2 = normal({5, 2}, 0, 1, float32, &g).requires_grad_();
  bool w2_done = false, h_seen_by_w2 = true, w1_seen_by_w2 = true, w1_done = false;
  Tensor h;
  GradReadyHandle h2 = register_grad_ready_hook(w2, [&](const Tensor& leaf) {
    w2_done = leaf.grad().defined();
    h_seen_by_w2 = h.grad().defined();
    w1_seen_by_w2 = w1.grad().defined();
  });
  GradReadyHandle h1 = register_grad_ready_hook(w1, [&](const Tensor& leaf) {
    w1_done = leaf.grad().defined();
    CHECK(w2_done);
  });
  h = tanh(matmul(x, w1));
  h.retain_grad();
  matmul(h, w2).pow(2.0).sum().backward();
  CHECK(w2_done);
  CHECK_FALSE(h_seen_by_w2);
  CHECK_FALSE(w1_seen_by_w2);
  CHECK(w1_done);
  CHECK(h.grad().defined());
  // The early write gives the same gradient as an unhooked backward.
  Tensor a = w1.detach().clone().requires_grad_(), b = w2.detach().clone().requires_grad_();
  matmul(tanh(matmul(x, a)), b).pow(2.0).sum().backward();
  CHECK(test::allclose(a.grad(), w1.grad()));
  CHECK(test::allclose(b.grad(), w2.grad()));
}

TEST_CASE("a grad-ready hook is not run when no gradient reaches the leaf, nor by grad()") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor unused = Tensor({3.0}).requires_grad_();
  int calls = 0;
  GradReadyHandle hx = register_grad_ready_hook(x, [&](const Tensor&) { ++calls; });
  GradReadyHandle hu = register_grad_ready_hook(unused, [&](const Tensor&) { calls += 100; });
  Tensor y = (x * x).sum();
  TensorList g = grad({y}, {x});
  CHECK(calls == 0);
  CHECK_FALSE(x.grad().defined());
  (x * x).sum().backward();
  CHECK(calls == 1);
  CHECK_FALSE(unused.grad().defined());
}

TEST_CASE("removing a grad-ready hook, by its handle or by destroying it") {
  Tensor x = Tensor({1.0}).requires_grad_();
  int a = 0, b = 0;
  GradReadyHandle ha = register_grad_ready_hook(x, [&](const Tensor&) { ++a; });
  {
    GradReadyHandle hb = register_grad_ready_hook(x, [&](const Tensor&) { ++b; });
    (x * 2.0).sum().backward();
    CHECK(a == 1);
    CHECK(b == 1);
  }
  (x * 2.0).sum().backward();
  CHECK(a == 2);
  CHECK(b == 1);
  ha.remove();
  CHECK_FALSE(ha.active());
  (x * 2.0).sum().backward();
  CHECK(a == 2);
  // Moving a handle moves the ownership of the registration.
  GradReadyHandle moved;
  {
    GradReadyHandle hc = register_grad_ready_hook(x, [&](const Tensor&) { ++a; });
    moved = std::move(hc);
  }
  (x * 2.0).sum().backward();
  CHECK(a == 3);
}

TEST_CASE("register_grad_ready_hook rejects tensors backward never writes") {
  auto noop = [](const Tensor&) {};
  Tensor x = Tensor({1.0}).requires_grad_();
  CHECK_THROWS_WITH_PARTS((void)register_grad_ready_hook(x * 2.0, noop), AutogradError,
                          "not a leaf", "mul");
  CHECK_THROWS_WITH_PARTS((void)register_grad_ready_hook(Tensor({1.0}), noop), AutogradError,
                          "does not require grad");
  CHECK_THROWS_AS((void)register_grad_ready_hook(Tensor(), noop), AutogradError);
  CHECK_THROWS_AS((void)register_grad_ready_hook(x, GradReadyHook()), AutogradError);
}

TEST_CASE("an exception from a grad-ready hook leaves backward, and the engine stays usable") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  bool fail_now = true;
  GradReadyHandle h = register_grad_ready_hook(x, [&](const Tensor&) {
    if (fail_now) throw std::runtime_error("hook failed");
  });
  CHECK_THROWS_WITH_AS((x * x).sum().backward(), "hook failed", std::runtime_error);
  fail_now = false;
  x.zero_grad();
  (x * 3.0).sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{3, 3});
}
