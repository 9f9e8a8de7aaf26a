// The tape and the engine: recording, replay order, accumulation, freeing, grad modes, threads,
// version counters, higher order.
#include <thread>
#include <tuple>
#include <type_traits>

#include "autograd/object_pool.h"
#include "support.h"

using namespace ag;
using test::leaf;

namespace {
Tensor times(const Tensor& x, const Tensor& factor) { return mul(x, factor); }
}  // namespace

TEST_CASE("op() and Const own the temporaries they are given (no dangling after the statement)") {
  static_assert(std::is_same_v<decltype(Const::t), Tensor>);
  Tensor x = test::f64({1, 2});
  // Both the Const and the tensor inside it are temporaries of this statement.
  auto call = op("times", times, x, Const{test::f64({3, 4})});
  static_assert(!std::is_reference_v<std::tuple_element_t<1, decltype(call.args)>>);
  static_assert(std::is_reference_v<std::tuple_element_t<0, decltype(call.args)>>);  // an lvalue
  std::vector<Tensor> churn(64, test::f64({-1, -1}));  // reuse the freed memory, if any
  TensorList same = call.call([](const Tensor& t, size_t) { return t; });
  CHECK(same[0].to_vector<double>() == std::vector<double>{3, 8});
  TensorList again = call.replay()({test::f64({5, 6})});
  CHECK(again[0].to_vector<double>() == std::vector<double>{15, 24});
}

TEST_CASE("backward of a scalar expression fills leaf gradients") {
  Tensor x = Tensor({1.0, 2.0, 3.0}).requires_grad_();
  Tensor y = (x * x).sum();
  y.backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{2, 4, 6});
  CHECK(x.is_leaf());
  CHECK_FALSE(y.is_leaf());
  CHECK(y.grad_fn()->name() == "sum");
}

TEST_CASE("gradients accumulate across backward calls and over repeated uses") {
  Tensor x = Tensor({1.0, -2.0}).requires_grad_();
  Tensor y = (x * 3.0 + x * x + x).sum();  // dy/dx = 3 + 2x + 1
  y.backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{6, 0});
  (x * 2.0).sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{8, 2});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  (x * 2.0).sum().backward();
  x.zero_grad(/*set_to_none=*/false);
  CHECK(x.grad().to_vector<float>() == std::vector<float>{0, 0});
}

TEST_CASE("replay runs in reverse recording order: a diamond sums both branches before going on") {
  Tensor x = Tensor({0.5}).requires_grad_();
  Tensor a = exp(x);
  Tensor b = a * 2.0;
  Tensor c = a * a;
  Tensor y = (b + c).sum();  // y = 2 e^x + e^2x, dy/dx = 2 e^x + 2 e^2x
  y.backward();
  double e = std::exp(0.5);
  CHECK(x.grad().item() == doctest::Approx(2 * e + 2 * e * e).epsilon(1e-6));
}

TEST_CASE("a second backward through freed buffers names the op; retain_graph allows it") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor y = (x * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{4, 8});
  CHECK_THROWS_WITH_PARTS(y.backward(), AutogradError, "mul", "second time", "retain_graph");
}

TEST_CASE("backward errors are clear") {
  Tensor x = Tensor({1.0, 2.0});
  CHECK_THROWS_WITH_PARTS(x.sum().backward(), AutogradError, "does not require grad");
  Tensor w = Tensor({1.0, 2.0}).requires_grad_();
  CHECK_THROWS_WITH_PARTS((w * 2.0).backward(), AutogradError, "one-element", "[2]");
  CHECK_THROWS_WITH_PARTS((w * 2.0).backward(ones({3})), ShapeError, "[3]", "[2]");
  CHECK_THROWS_WITH_PARTS(Tensor({1, 2}).to(int64).requires_grad_(), DtypeError, "int64");
}

TEST_CASE("NoGradGuard stops recording, per thread; EnableGradGuard turns it back on") {
  Tensor x = Tensor({1.0}).requires_grad_();
  {
    NoGradGuard ng;
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    {
      EnableGradGuard eg;
      CHECK((x * 2.0).requires_grad());
    }
    bool other_thread_records = false;
    std::thread t([&] { other_thread_records = (x * 2.0).requires_grad(); });
    t.join();
    CHECK(other_thread_records);
  }
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("detach cuts the graph and shares storage") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor y = x * 3.0;
  Tensor d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.impl()->storage == y.impl()->storage);
  Tensor z = (y * d).sum();
  z.backward();
  // d is a constant: dz/dx = 3 * d
  CHECK(x.grad().to_vector<float>() == std::vector<float>{9, 18});
}

TEST_CASE("retain_grad keeps the gradient of a non-leaf") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor y = x * 3.0;
  y.retain_grad();
  (y * y).sum().backward();
  CHECK(y.grad().to_vector<float>() == std::vector<float>{6, 12});
  Tensor z = x * 2.0;
  z.sum().backward();
  CHECK_FALSE(z.grad().defined());
}

TEST_CASE("functional grad returns gradients without touching .grad, for leaves and non-leaves") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor h = x * x;
  Tensor y = (h * 2.0).sum();
  TensorList g = grad({y}, {x, h}, {}, /*retain_graph=*/true);
  CHECK(g[0].to_vector<float>() == std::vector<float>{4, 8});
  CHECK(g[1].to_vector<float>() == std::vector<float>{2, 2});
  CHECK_FALSE(x.grad().defined());
  Tensor unused = Tensor({1.0}).requires_grad_();
  CHECK_THROWS_WITH_PARTS(grad({y}, {unused}, {}, true), AutogradError, "not used");
  TensorList g2 = grad({y}, {unused}, {}, true, false, /*allow_unused=*/true);
  CHECK_FALSE(g2[0].defined());
}

TEST_CASE("grad with create_graph gives a differentiable gradient: Hessian-vector product") {
  // f(x) = sum(x^3) / 3 + x0 * x1 ; grad = x^2 + [x1, x0]; Hessian = diag(2x) + [[0,1],[1,0]]
  Tensor x = Tensor::from_vector(std::vector<double>{1.5, -2.0}).requires_grad_();
  auto f = [](const Tensor& x) { return sum(pow(x, 3.0)) * (1.0 / 3.0) + x[0] * x[1]; };
  Tensor g = grad({f(x)}, {x}, {}, false, /*create_graph=*/true)[0];
  CHECK(g.requires_grad());
  CHECK(g.to_vector<double>()[0] == doctest::Approx(1.5 * 1.5 - 2.0));
  Tensor v = Tensor::from_vector(std::vector<double>{1.0, 2.0});
  Tensor hv = grad({(g * v).sum()}, {x})[0];
  // H v = [2*1.5*1 + 2, 1 + 2*(-2)*2]
  CHECK(hv.to_vector<double>()[0] == doctest::Approx(5.0));
  CHECK(hv.to_vector<double>()[1] == doctest::Approx(-7.0));
}

TEST_CASE("the full Hessian of a small function, row by row") {
  // f(x, y) = x^2 y + exp(x y)
  Tensor p = Tensor::from_vector(std::vector<double>{0.3, -0.7}).requires_grad_();
  auto f = [](const Tensor& p) { return p[0] * p[0] * p[1] + exp(p[0] * p[1]); };
  Tensor g = grad({f(p)}, {p}, {}, false, true)[0];
  double x = 0.3, y = -0.7, e = std::exp(x * y);
  double H[2][2] = {{2 * y + y * y * e, 2 * x + e + x * y * e}, {2 * x + e + x * y * e, x * x * e}};
  for (int i = 0; i < 2; ++i) {
    Tensor row = grad({g[i]}, {p}, {}, /*retain_graph=*/true)[0];
    for (int j = 0; j < 2; ++j) CHECK(row.to_vector<double>()[j] == doctest::Approx(H[i][j]));
  }
}

TEST_CASE("backward with create_graph accumulates a differentiable .grad") {
  Tensor x = Tensor::from_vector(std::vector<double>{2.0}).requires_grad_();
  (pow(x, 3.0)).sum().backward(Tensor(), false, /*create_graph=*/true);
  Tensor g = x.grad();  // 3 x^2 = 12
  CHECK(g.item() == doctest::Approx(12.0));
  CHECK(g.requires_grad());
  Tensor gg = grad({g.sum()}, {x})[0];  // 6 x = 12
  CHECK(gg.item() == doctest::Approx(12.0));
  // x.grad's graph saved x: a cycle (as in PyTorch) that resetting the grad breaks.
  std::weak_ptr<Node> graph = g.grad_fn();
  g = Tensor();
  CHECK_FALSE(graph.expired());
  x.zero_grad();
  CHECK(graph.expired());
}

TEST_CASE("a chain of 1,000,000 ops back-propagates and is freed without recursion") {
  Tensor x = Tensor({1.0}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 1000000; ++i) y = y * 1.0 + 0.0;
  y.sum().backward();
  CHECK(x.grad().item() == doctest::Approx(1.0));
  y = Tensor();  // frees the whole chain
  CHECK(x.grad().item() == doctest::Approx(1.0));
}

TEST_CASE("memory stays flat over many training-like steps (graphs are freed by refcount)") {
  Tensor w = leaf({32, 32});
  Tensor x = test::leaf({8, 32}, -1, 1, 7).detach();
  empty_buffer_cache();
  size_t cached_after_warmup = 0, pool_after_warmup = 0;
  for (int step = 0; step < 2000; ++step) {
    Tensor h = tanh(matmul(x, w));
    Tensor loss = (h * h).mean();
    loss.backward();
    {
      NoGradGuard ng;
      w.sub_(w.grad(), 0.01);
    }
    w.zero_grad();
    if (step == 100) {
      cached_after_warmup = buffer_cache_stats().cached_bytes;
      pool_after_warmup = memory_stats().object_pool_bytes;
    }
  }
  CHECK(buffer_cache_stats().cached_bytes <= cached_after_warmup + 4096);
  CHECK(memory_stats().object_pool_bytes == pool_after_warmup);
}

TEST_CASE("the object pool reuses blocks, and frees on another thread do not grow it") {
  using detail::pool_allocate, detail::pool_free;
  void* a = pool_allocate(40);
  if (memory_stats().object_pool_bytes == 0) {  // off (AddressSanitizer): plain new and delete
    pool_free(a, 40);
    return;
  }
  // Last freed, first reused, per size class; blocks aligned to 16 bytes.
  void* b = pool_allocate(40);
  CHECK(reinterpret_cast<uintptr_t>(a) % 16 == 0);
  CHECK(reinterpret_cast<uintptr_t>(b) % 16 == 0);
  pool_free(a, 40);
  CHECK(pool_allocate(48) == a);  // same class (33..48 bytes)
  pool_free(a, 48);
  pool_free(b, 40);
  void* z0 = pool_allocate(0);  // zero bytes: still a block of its own
  void* z1 = pool_allocate(0);
  CHECK(z0 != z1);
  pool_free(z0, 0);
  pool_free(z1, 0);
  // Made on one thread, freed on another, round after round: the freeing thread hands its surplus
  // to the depot, where the making thread takes it instead of carving new chunks. Without the depot
  // each round would add 20000 blocks of 208 bytes (about 4 MB).
  constexpr int kBlocks = 20000;
  constexpr size_t kSize = 200;
  std::vector<void*> blocks(kBlocks);
  auto make = [&] {
    std::thread t([&] {
      for (void*& p : blocks) p = pool_allocate(kSize);
    });
    t.join();
  };
  make();
  for (void* p : blocks) pool_free(p, kSize);
  const size_t after_first = memory_stats().object_pool_bytes;
  for (int round = 0; round < 10; ++round) {
    make();
    for (void* p : blocks) pool_free(p, kSize);
  }
  CHECK(memory_stats().object_pool_bytes <= after_first + (size_t(2) << 20));
  // A thread that exits leaves its free blocks to the others: a second thread making as many
  // blocks carves nothing new.
  auto make_and_free = [&] {
    std::thread t([&] {
      for (void*& p : blocks) p = pool_allocate(kSize);
      for (void* p : blocks) pool_free(p, kSize);
    });
    t.join();
  };
  make_and_free();
  const size_t after_exit = memory_stats().object_pool_bytes;
  make_and_free();
  CHECK(memory_stats().object_pool_bytes == after_exit);
  // Objects made on a thread that has exited are freed safely on this one.
  Tensor kept;
  std::thread([&] { kept = (Tensor({1.0, 2.0}).requires_grad_() * 3.0).sum(); }).join();
  kept.backward();
  CHECK(kept.item() == doctest::Approx(9.0));
  kept = Tensor();
}

TEST_CASE("in-place ops bump versions; modifying a saved tensor is caught and names the op") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor h = x * 2.0;
  Tensor y = exp(h);  // saves its output
  uint32_t v = y.version();
  {
    NoGradGuard ng;
    y.add_(1.0);
  }
  CHECK(y.version() == v + 1);
  CHECK_THROWS_WITH_PARTS(y.sum().backward(), AutogradError, "exp", "in-place", "version");
}

TEST_CASE("in-place on a leaf that requires grad is refused while recording") {
  Tensor w = Tensor({1.0}).requires_grad_();
  CHECK_THROWS_WITH_PARTS(w.add_(1.0), AutogradError, "add_", "leaf", "NoGradGuard");
  {
    NoGradGuard ng;
    w.add_(1.0);
  }
  CHECK(w.item() == 2.0);
}

TEST_CASE("recorded in-place op on a non-leaf keeps the gradient correct") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor h = x * 3.0;
  h.mul_(2.0);  // h = 6x
  h.sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{6, 6});
}

TEST_CASE("two threads train two models at once") {
  auto train = [](uint64_t seed, double* out) {
    Generator g(seed);
    Tensor w = randn({4, 1}, float64, &g).requires_grad_();
    Tensor x = randn({16, 4}, float64, &g);
    Tensor target = matmul(x, Tensor::from_vector(std::vector<double>{1, -2, 3, 0.5}, {4, 1}));
    for (int i = 0; i < 300; ++i) {
      Tensor loss = pow(matmul(x, w) - target, 2.0).mean();
      loss.backward();
      NoGradGuard ng;
      w.sub_(w.grad(), 0.1);
      w.zero_grad();
    }
    *out = pow(matmul(x, w) - target, 2.0).mean().item();
  };
  double l1 = 1, l2 = 1;
  std::thread a(train, 1, &l1), b(train, 2, &l2);
  a.join();
  b.join();
  CHECK(l1 < 1e-6);
  CHECK(l2 < 1e-6);
}

TEST_CASE("float32 to float64 conversion is differentiable") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor y = (x.to(float64) * x.to(float64)).sum();
  CHECK(y.dtype() == float64);
  y.backward();
  CHECK(x.grad().dtype() == float32);
  CHECK(x.grad().to_vector<float>() == std::vector<float>{2, 4});
}

TEST_CASE("leaf gradients never alias each other, the root gradient or a user's tensor") {
  // add's backward hands the same gradient to both inputs; each leaf must get its own buffer.
  Tensor a = Tensor({1.0, 2.0}).requires_grad_(), b = Tensor({3.0, 4.0}).requires_grad_();
  Tensor seed = Tensor({1.0, 1.0});
  (a + b).backward(seed);
  CHECK_FALSE(a.grad().impl()->storage == b.grad().impl()->storage);
  CHECK_FALSE(a.grad().impl()->storage == seed.impl()->storage);
  a.grad().add_(10.0);
  CHECK(b.grad().to_vector<float>() == std::vector<float>{1, 1});
  CHECK(seed.to_vector<float>() == std::vector<float>{1, 1});
  // A leaf used straight as the output: its gradient is the seed, copied.
  Tensor c = Tensor({5.0}).requires_grad_();
  Tensor s2 = Tensor({2.0});
  c.backward(s2);
  s2.fill_(7.0);
  CHECK(c.grad().item() == 2.0);
}
