// Reliability (issue 12): saved index tensors and views are checked against in-place writes,
// anomaly mode, live-object counters over long runs, threads, allocation failures and hostile
// input. Built with -g (tests/meson.build) so that anomaly mode can name this file's lines.
#include <thread>

#include "nn/nn.h"
#include "support.h"

using namespace ag;

namespace {

Tensor idx(std::vector<int64_t> v, const Shape& s) { return Tensor::from_vector(v, s); }

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

// ---- index tensors saved for backward ----

TEST_CASE("an index tensor written in place after the forward fails the backward (gather)") {
  Tensor x = test::leaf({2, 3});
  Tensor i = idx({0, 2, 1, 1}, {2, 2});
  Tensor y = gather(x, 1, i).sum();
  i.fill_(0);  // would silently move the gradient to column 0
  CHECK_THROWS_WITH_PARTS(y.backward(), AutogradError, "gather",
                          "modified by an in-place operation");
}

TEST_CASE("an index tensor written in place fails the backward (index_select, embedding)") {
  Tensor w = test::leaf({4, 3});
  Tensor i = idx({3, 1}, {2});
  Tensor y = index_select(w, 0, i).sum();
  i.copy_(idx({2, 1}, {2}));
  CHECK_THROWS_WITH_PARTS(y.backward(), AutogradError, "index_select",
                          "modified by an in-place operation");
  Tensor tokens = idx({0, 3, 2, 2}, {2, 2});
  Tensor e = embedding(w, tokens).sum();
  tokens.zero_();
  CHECK_THROWS_WITH_PARTS(e.backward(), AutogradError, "modified by an in-place operation");
}

TEST_CASE("an index tensor written in place fails the backward (scatter_add, index_add)") {
  Tensor x = test::leaf({2, 3}), src = test::leaf({2, 2}, -1, 1, 2);
  Tensor i = idx({0, 2, 1, 1}, {2, 2});
  Tensor y = scatter_add(x, 1, i, src).sum();
  i.fill_(1);
  CHECK_THROWS_WITH_PARTS(y.backward(), AutogradError, "scatter_add",
                          "modified by an in-place operation");
  Tensor j = idx({2, 0}, {2});
  Tensor z = index_add(x, 1, j, src).sum();
  j.fill_(1);
  CHECK_THROWS_WITH_PARTS(z.backward(), AutogradError, "index_add",
                          "modified by an in-place operation");
}

TEST_CASE("an index tensor left alone gives the right gradient, twice with retain_graph") {
  Tensor x = test::leaf({2, 3});
  Tensor i = idx({2, 2, 0, 1}, {2, 2});
  Tensor y = gather(x, 1, i).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0, 2, 1, 1, 0});
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0, 4, 2, 2, 0});
  test::check_gradients([i](const TensorList& a) { return gather(a[0], 1, i); }, {x});
}

// ---- views and in-place ops ----

TEST_CASE("a view taken before a recorded in-place op on its base cannot be used for gradients") {
  Tensor x = test::leaf({4});
  Tensor base = mul(x, 1.0);
  Tensor v = base.slice(0, 0, 2);  // records slice of the old base
  base.mul_(3.0);                  // recorded: base's history is now x * 3
  // v sees the tripled values but its history says x * 1: its gradient would be 1, not 3.
  CHECK(v.to_vector<double>()[0] == doctest::Approx(3 * x.to_vector<double>()[0]));
  CHECK_THROWS_WITH_PARTS(mul(v, v), AutogradError, "mul", "view of shape [2]",
                          "before an in-place operation on the base");
  CHECK_THROWS_WITH_PARTS(v.sum(), AutogradError, "sum", "view of shape [2]");
  CHECK_THROWS_WITH_PARTS(v.backward(ones({2}, float64)), AutogradError, "backward",
                          "view of shape [2]");
  // Views of the stale view inherit the staleness.
  CHECK_THROWS_WITH_PARTS(v.slice(0, 0, 1), AutogradError, "slice", "view of shape [2]");
  // Outside recording the values are what they are: no error.
  {
    NoGradGuard ng;
    CHECK(mul(v, 2.0).numel() == 2);
  }
  // A view taken after the in-place op has the new history and the right gradient.
  Tensor w = base.slice(0, 0, 2);
  w.sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 3, 0, 0});
}

TEST_CASE(
    "a view of a buffer that gains history through copy_ is refused, not treated as constant") {
  Tensor x = test::leaf({3});
  Tensor buf = zeros({3}, float64);
  Tensor v = buf.slice(0, 1, 3);  // no grad: a constant view so far
  buf.copy_(x);                   // recorded: buf now depends on x, v's values too
  Tensor w = test::leaf({2}, -1, 1, 7);
  // mul(v, w) would give x no gradient at all.
  CHECK_THROWS_WITH_PARTS(mul(v, w), AutogradError, "mul", "view of shape [2]");
  // Alone (nothing else requiring grad) it is refused too rather than silently constant.
  CHECK_THROWS_WITH_PARTS(exp(v), AutogradError, "exp", "view of shape [2]");
}

TEST_CASE(
    "an in-place op on a view while recording is refused, so the base is never silently wrong") {
  Tensor x = test::leaf({4});
  Tensor base = mul(x, 1.0);
  Tensor v = base.slice(0, 0, 2);
  CHECK_THROWS_WITH_PARTS(v.mul_(2.0), AutogradError, "mul_", "view");
  CHECK(base.to_vector<double>() == x.to_vector<double>());  // nothing was written
  Tensor buf = zeros({4}, float64);
  CHECK_THROWS_WITH_PARTS(buf.slice(0, 0, 2).copy_(x.slice(0, 0, 2)), AutogradError, "copy_",
                          "view");
  // The base itself still gives its right gradient.
  base.sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 1, 1, 1});
}

TEST_CASE("detach() is not a tracked view: in-place ops on its base do not affect it") {
  Tensor x = test::leaf({3});
  Tensor base = mul(x, 2.0);
  Tensor d = base.detach();
  Tensor dv = d.slice(0, 0, 2);
  base.add_(1.0);
  Tensor w = test::leaf({3}, -1, 1, 3);
  mul(d, w).sum().backward();
  CHECK(test::allclose(w.grad(), d, 0, 0));
  CHECK(mul(dv, w.slice(0, 0, 2)).numel() == 2);
}

TEST_CASE("in-place ops without views keep working and give PyTorch's gradients") {
  Tensor x = test::leaf({3});
  Tensor y = mul(x, 2.0);
  y.mul_(x);  // y = 2 x^2
  y.sum().backward();
  CHECK(test::allclose(x.grad(), mul(x, 4.0), 1e-12, 0));
}

// ---- anomaly mode ----

TEST_CASE("anomaly mode: log(0) names the op, the shapes, forward, and this file's line") {
  Tensor x = zeros({2, 3}, float64).requires_grad_();
  DetectAnomalyGuard anomaly;
  bool thrown = false;
  const int line = __LINE__ + 2;
  try {
    Tensor y = log(x);
  } catch (const AnomalyError& e) {
    thrown = true;
    std::string m = e.what();
    INFO(m);
    CHECK(contains(m, "anomaly in forward: log produced infinity at element 0"));
    CHECK(contains(m, "inputs have shapes [2, 3]"));
    CHECK(contains(m, "test_reliability.cpp:" + std::to_string(line)));
  }
  CHECK(thrown);
}

TEST_CASE("anomaly mode: 0/0 and sqrt of a negative are found in the forward") {
  DetectAnomalyGuard anomaly;
  Tensor a = Tensor::from_vector(std::vector<double>{1, 0}).requires_grad_();
  CHECK_THROWS_WITH_PARTS(div(a, a), AnomalyError, "forward: div produced NaN at element 1",
                          "shapes [2], [2]", "test_reliability.cpp:");
  Tensor b = Tensor::from_vector(std::vector<double>{4, -1, 9}).requires_grad_();
  CHECK_THROWS_WITH_PARTS(sqrt(b), AnomalyError, "forward: sqrt produced NaN at element 1",
                          "shapes [3]");
}

TEST_CASE("anomaly mode: a gradient that overflows is found in the backward, naming the op") {
  Tensor x = Tensor::from_vector(std::vector<double>{4, 0}).requires_grad_();
  DetectAnomalyGuard anomaly;
  const int line = __LINE__ + 1;
  Tensor y = sqrt(x);  // finite: 2, 0
  Tensor l = mul(y, 3.0).sum();
  bool thrown = false;
  try {
    l.backward();
  } catch (const AnomalyError& e) {
    thrown = true;
    std::string m = e.what();
    INFO(m);
    CHECK(contains(m, "anomaly in backward: sqrt's backward produced infinity at element 1"));
    CHECK(contains(m, "input 0 (shape [2])"));
    CHECK(contains(m, "test_reliability.cpp:" + std::to_string(line)));
  }
  CHECK(thrown);
}

TEST_CASE("anomaly mode: an exploding network stops at the first layer that overflows") {
  Generator g(3);
  Tensor h = randn({4, 16}, float32, &g);
  std::vector<Tensor> ws;
  for (int i = 0; i < 40; ++i)
    ws.push_back(mul(randn({16, 16}, float32, &g), 8.0).requires_grad_());
  int reached = 0;
  {
    DetectAnomalyGuard anomaly;
    try {
      for (const Tensor& w : ws) {
        h = matmul(h, w);
        ++reached;
      }
    } catch (const AnomalyError& e) {
      std::string m = e.what();
      INFO(m);
      CHECK(contains(m, "forward: matmul produced"));  // infinity, or NaN from inf - inf
      CHECK(contains(m, "[4, 16], [16, 16]"));
    }
  }
  CHECK(reached > 5);  // values grow ~32x per layer: float32 overflows after a dozen or so
  CHECK(reached < 40);
  CHECK_FALSE(is_anomaly_enabled());  // the guard restored the previous state
}

TEST_CASE("anomaly mode off: NaNs flow through without a check or a captured stack") {
  Tensor x = zeros({2}, float64).requires_grad_();
  Tensor y = log(x);
  CHECK(std::isinf(y.to_vector<double>()[0]));
  CHECK(y.grad_fn()->diagnostics.recorded_stack.empty());
  y.sum().backward();
  CHECK(std::isinf(x.grad().to_vector<double>()[0]));
}

// ---- counters, long runs, threads ----

namespace {

// A two-layer MLP trained by SGD on a fixed batch; returns the final parameters.
struct Tiny {
  std::shared_ptr<nn::Linear> l1, l2;
  explicit Tiny(uint64_t seed) {
    Generator g(seed);
    l1 = std::make_shared<nn::Linear>(8, 16, true, &g);
    l2 = std::make_shared<nn::Linear>(16, 4, true, &g);
  }
  std::vector<Tensor> parameters() const {
    auto p = l1->parameters(), q = l2->parameters();
    p.insert(p.end(), q.begin(), q.end());
    return p;
  }
  Tensor loss(const Tensor& x, const Tensor& t) const {
    return cross_entropy(l2->forward(relu(l1->forward(x))), t);
  }
};

std::vector<std::vector<float>> train(uint64_t seed, int steps) {
  Tiny m(seed);
  Generator g(seed + 100);
  Tensor x = randn({32, 8}, float32, &g);
  Tensor t = randint(0, 4, {32}, &g);
  nn::SGD opt(m.parameters(), {.lr = 0.05, .momentum = 0.9});
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    m.loss(x, t).backward();
    opt.step();
  }
  std::vector<std::vector<float>> r;
  for (const Tensor& p : m.parameters()) r.push_back(p.to_vector<float>());
  return r;
}

}  // namespace

TEST_CASE("10,000 training steps keep live tensors, nodes, buffers and pooled bytes flat") {
  Tiny m(1);
  Generator g(2);
  Tensor x = randn({16, 8}, float32, &g);
  Tensor t = randint(0, 4, {16}, &g);
  nn::Adam opt(m.parameters(), {.lr = 1e-3});
  auto step = [&] {
    opt.zero_grad();
    m.loss(x, t).backward();
    opt.step();
  };
  for (int s = 0; s < 10; ++s) step();  // optimizer state and the buffer cache warm up
  MemoryStats before = memory_stats();
  CHECK(before.live_tensors > 0);
  CHECK(before.live_storages > 0);
  for (int s = 0; s < 10000; ++s) step();
  MemoryStats after = memory_stats();
  CHECK(after.live_tensors == before.live_tensors);
  CHECK(after.live_nodes == before.live_nodes);
  CHECK(after.live_storages == before.live_storages);
  CHECK(after.live_storage_bytes == before.live_storage_bytes);
  CHECK(after.cached_bytes == before.cached_bytes);
  CHECK(after.object_pool_bytes == before.object_pool_bytes);
}

TEST_CASE("a retained graph is freed when its last reference goes") {
  Tiny m(1);
  Generator g(2);
  Tensor x = randn({16, 8}, float32, &g);
  Tensor t = randint(0, 4, {16}, &g);
  MemoryStats before = memory_stats();
  {
    Tensor loss = m.loss(x, t);
    loss.backward(Tensor(), /*retain_graph=*/true);
    MemoryStats held = memory_stats();
    CHECK(held.live_nodes > before.live_nodes + 5);  // the graph's nodes and leaves' accumulators
    CHECK(held.live_tensors > before.live_tensors);
    for (Tensor& p : m.parameters()) p.zero_grad();
  }
  MemoryStats after = memory_stats();
  CHECK(after.live_nodes == before.live_nodes);
  CHECK(after.live_tensors == before.live_tensors);
  CHECK(after.live_storages == before.live_storages);
}

TEST_CASE("counters see tensors made on one thread and freed on another") {
  MemoryStats before = memory_stats();
  Tensor kept;
  std::thread([&] { kept = ones({1000}); }).join();
  MemoryStats held = memory_stats();
  CHECK(held.live_tensors == before.live_tensors + 1);
  CHECK(held.live_storage_bytes == before.live_storage_bytes + 4000);
  kept = Tensor();
  MemoryStats after = memory_stats();
  CHECK(after.live_tensors == before.live_tensors);
  CHECK(after.live_storage_bytes == before.live_storage_bytes);
}

TEST_CASE("two threads training two models at once match training them one after the other") {
  const int steps = 200;
  auto a_seq = train(11, steps);
  auto b_seq = train(12, steps);
  CHECK(a_seq != b_seq);
  std::vector<std::vector<float>> a_par, b_par;
  std::thread ta([&] { a_par = train(11, steps); });
  std::thread tb([&] {
    NoGradGuard ng;      // grad mode is per thread: this must not leak into the other thread...
    EnableGradGuard eg;  // ...and this thread records as usual
    b_par = train(12, steps);
  });
  ta.join();
  tb.join();
  CHECK(a_par == a_seq);  // bit-identical
  CHECK(b_par == b_seq);
}

// ---- allocation failures and sizes that overflow ----

TEST_CASE("a huge request raises MemoryError with the size and the process continues") {
  CHECK_THROWS_WITH_PARTS(zeros({int64_t(1) << 40}), MemoryError, "empty",
                          "float32 tensor of shape [1099511627776]", "4398046511104 bytes");
  CHECK_THROWS_AS(ones({int64_t(1) << 20, int64_t(1) << 20, 16}, float64), MemoryError);
  // Nothing leaked, nothing broken: ordinary work goes on.
  Tensor x = test::leaf({3});
  mul(x, x).sum().backward();
  CHECK(test::allclose(x.grad(), mul(x, 2.0), 1e-12, 0));
}

TEST_CASE("sizes whose product overflows are refused, not wrapped to a small tensor") {
  int64_t big = int64_t(1) << 31;
  CHECK_THROWS_WITH_PARTS(Tensor::empty({big, big, 4}), MemoryError, "empty",
                          "[2147483648, 2147483648, 4]", "64-bit");
  CHECK_THROWS_WITH_PARTS(Tensor::empty({int64_t(1) << 62, 2}, float64), MemoryError, "empty");
  // A shape with a zero has no elements; its other sizes must still multiply to a count that fits,
  // or its strides (and any product of some of its sizes, e.g. a flatten) would overflow.
  CHECK(Tensor::empty({big, big, 0}).numel() == 0);
  CHECK(Tensor::empty({big, big, 0}).flatten(0, 1).shape() == Shape{int64_t(1) << 62, 0});
  CHECK_THROWS_WITH_PARTS(Tensor::empty({big, big, 4, 0}), MemoryError, "empty",
                          "[2147483648, 2147483648, 4, 0]", "0 elements");
  CHECK_THROWS_WITH_PARTS(Tensor::empty({0, int64_t(1) << 62, 4}), MemoryError, "empty");
  CHECK_THROWS_WITH_PARTS(zeros({0}).reshape({0, int64_t(1) << 62, 4}), ShapeError, "reshape");
  CHECK_THROWS_WITH_PARTS(zeros({1, 0}).expand({big, big, 4, 0}), MemoryError, "expand");
  CHECK_THROWS_WITH_PARTS(Tensor::from_vector(std::vector<float>{1}, {big, big, 4}), MemoryError,
                          "from_vector", "[2147483648, 2147483648, 4]");
  // A reshape whose product wraps to the right count must not produce a view past the buffer.
  CHECK_THROWS_WITH_PARTS(zeros({0}).reshape({int64_t(1) << 62, 4}), ShapeError, "reshape", "[0]");
  CHECK_THROWS_WITH_PARTS(zeros({4}).reshape({int64_t(1) << 62, 4, -1}), ShapeError, "reshape");
}

// ---- hostile input: each a clear error from the project's hierarchy naming the op and shapes ----

TEST_CASE("hostile sizes: negative, overflowing, wrong reshape counts, huge factories") {
  CHECK_THROWS_WITH_PARTS(zeros({3, -1}), ShapeError, "empty", "negative size -1", "[3, -1]");
  CHECK_THROWS_WITH_PARTS(zeros({2, 3}).reshape({-2, 3}), ShapeError, "reshape", "-2");
  CHECK_THROWS_WITH_PARTS(zeros({2, 3}).reshape({4, 2}), ShapeError, "reshape", "[2, 3]", "[4, 2]");
  CHECK_THROWS_WITH_PARTS(zeros({2, 3}).reshape({4, -1}), ShapeError, "reshape", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(zeros({2, 3}).view({7}), ShapeError, "view", "[2, 3]", "[7]");
  CHECK_THROWS_WITH_PARTS(ones({1, 1}).expand({-3, 2}), ShapeError, "expand", "[-3, 2]");
  int64_t huge = int64_t(1) << 40;
  CHECK_THROWS_WITH_PARTS(ones({1, 1}).expand({huge, huge}), MemoryError, "expand",
                          "[1099511627776, 1099511627776]");
  CHECK_THROWS_WITH_PARTS(arange(0.0, 1e30, 1.0), ValueError, "arange", "too many elements");
  CHECK_THROWS_AS(linspace(0, 1, int64_t(1) << 62), MemoryError);
  CHECK_THROWS_AS(eye(huge), MemoryError);
  CHECK_THROWS_WITH_PARTS(Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2}), ShapeError,
                          "from_vector", "[2, 2]");
}

TEST_CASE("hostile indices: out of range or negative in gather, embedding, targets, one_hot") {
  Tensor x = ones({2, 3});
  CHECK_THROWS_WITH_PARTS(gather(x, 1, idx({0, 3, 1, 1}, {2, 2})), IndexError, "gather", "index 3",
                          "[2, 3]");
  CHECK_THROWS_WITH_PARTS(gather(x, 1, idx({0, -1, 1, 1}, {2, 2})), IndexError, "gather",
                          "index -1");
  CHECK_THROWS_WITH_PARTS(index_select(x, 0, idx({2}, {1})), IndexError, "index_select", "index 2");
  CHECK_THROWS_WITH_PARTS(embedding(x, idx({0, 2}, {2})), IndexError, "embedding", "[2]", "2 rows");
  CHECK_THROWS_WITH_PARTS(cross_entropy(x, idx({0, 3}, {2})), IndexError, "cross_entropy",
                          "target 3", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(cross_entropy(x, idx({0, -5}, {2})), IndexError, "cross_entropy",
                          "target -5");
  CHECK_THROWS_WITH_PARTS(nn::nll_loss(x, idx({0, 3}, {2})), IndexError, "nll_loss", "target 3");
  CHECK_THROWS_WITH_PARTS(one_hot(idx({0, 4}, {2}), 4), IndexError, "one_hot", "index 4");
  CHECK_THROWS_WITH_PARTS(one_hot(idx({-1}, {1}), 4), IndexError, "one_hot", "index -1");
  CHECK_THROWS_WITH_PARTS(x.select(0, 5), IndexError, "select", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(x.at({0, 3}), IndexError, "at", "[2, 3]");
}

TEST_CASE("hostile targets: NaN in float targets is refused by the losses") {
  Tensor pred = zeros({2, 3}, float64).requires_grad_();
  Tensor t = zeros({2, 3}, float64);
  {
    NoGradGuard ng;
    t.fill_(0.5);
    t.slice(0, 1, 2).slice(1, 2, 3).fill_(NAN);
  }
  CHECK_THROWS_WITH_PARTS(nn::mse_loss(pred, t), ValueError, "mse_loss", "NaN", "[2, 3]");
  CHECK_THROWS_WITH_PARTS(nn::binary_cross_entropy_with_logits(pred, t), ValueError,
                          "binary_cross_entropy_with_logits", "NaN");
  CHECK_THROWS_WITH_PARTS(nn::cross_entropy(pred, t), ValueError, "cross_entropy_soft",
                          "NaN at element 5", "[2, 3]");
  // Infinite predictions are the model's business, not the target's: no error.
  CHECK(nn::mse_loss(pred, zeros({2, 3}, float64)).item() == 0);
}

TEST_CASE("hostile batches: an empty batch with a 'mean' reduction is refused; sum and none work") {
  Tensor logits = zeros({0, 3}).requires_grad_();
  Tensor none = Tensor::empty({0}, int64);
  CHECK_THROWS_WITH_PARTS(cross_entropy(logits, none), ValueError, "cross_entropy", "empty batch",
                          "[0, 3]");
  CHECK_THROWS_WITH_PARTS(nn::cross_entropy(logits, zeros({0, 3})), ValueError,
                          "cross_entropy_soft", "empty batch");
  CHECK_THROWS_WITH_PARTS(nn::mse_loss(logits, zeros({0, 3})), ValueError, "mse_loss",
                          "empty batch", "[0, 3]");
  CHECK_THROWS_WITH_PARTS(nn::nll_loss(logits, none), ValueError, "nll_loss", "empty batch");
  CHECK(cross_entropy(logits, none, "sum").item() == 0);
  CHECK(cross_entropy(logits, none, "none").numel() == 0);
  nn::Linear l(3, 2);
  CHECK(l.forward(zeros({0, 3})).shape() == Shape{0, 2});
}

TEST_CASE("hostile dtypes: where a dtype cannot be promoted the op says which") {
  Tensor f32 = ones({2, 3}), f64 = ones({2, 3}, float64), i64 = ones({2, 3}, int64);
  CHECK_THROWS_WITH_PARTS(matmul(i64, ones({3, 2}, int64)), DtypeError, "matmul", "int64");
  CHECK_THROWS_WITH_PARTS(cat({f32, f64}, 0), DtypeError, "cat", "float64", "float32");
  CHECK_THROWS_WITH_PARTS(cross_entropy(f32, Tensor::from_vector(std::vector<float>{0, 1})),
                          DtypeError, "cross_entropy", "float32");
  CHECK_THROWS_WITH_PARTS(one_hot(Tensor::from_vector(std::vector<float>{0, 1}), 4), DtypeError,
                          "one_hot", "float32");
  CHECK_THROWS_WITH_PARTS(gather(f32, 1, ones({2, 2})), DtypeError, "gather", "float32");
  CHECK_THROWS_WITH_PARTS(i64.requires_grad_(), DtypeError, "requires_grad_", "int64");
  CHECK_THROWS_WITH_PARTS(f32.data<double>(), DtypeError, "float32");
  // Elementwise ops promote (float32 + float64 -> float64), as NumPy and PyTorch do.
  CHECK(add(f32, f64).dtype() == float64);
}
