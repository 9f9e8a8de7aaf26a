// The CNN modules: Conv1d, Conv2d, ConvTranspose2d, the pooling layers, Flatten, BatchNorm1d/2d
// and GroupNorm. Shapes, PyTorch's default initialisation, agreement with the ops they wrap,
// gradients through a small stack in float64, BatchNorm's modes and its buffers in checkpoints, and
// a LeNet-5 that learns.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "nn/nn.h"
#include "support.h"

using namespace ag;
using test::leaf;

namespace {
double max_abs(const Tensor& t) {
  auto v = test::values(t);
  double r = 0;
  for (double x : v) r = std::max(r, std::abs(x));
  return r;
}
}  // namespace

TEST_CASE("Conv2d: shapes, PyTorch's default initialisation, and the op it wraps") {
  Generator gen(1);
  nn::Conv2d conv(4, 6, Size2(3, 5), 1, 0, 1, 2, true, &gen);
  CHECK(conv.weight.shape() == Shape{6, 2, 3, 5});
  CHECK(conv.bias.shape() == Shape{6});
  CHECK(conv.num_parameters() == 6 * 2 * 3 * 5 + 6);
  // kaiming_uniform(a = sqrt(5)) and the bias: both U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
  // fan_in = 2 * 3 * 5 = 30. The extremes come close to the bound.
  const double bound = 1.0 / std::sqrt(30.0);
  CHECK(max_abs(conv.weight) <= bound);
  CHECK(max_abs(conv.weight) > 0.9 * bound);
  CHECK(max_abs(conv.bias) <= bound);
  Tensor x = randn({2, 4, 7, 9}, float32, &gen);
  Tensor y = conv(x);
  CHECK(y.shape() == Shape{2, 6, 5, 5});
  CHECK(test::allclose(y, conv2d(x, conv.weight, conv.bias, 1, 0, 1, 2), 0, 0));
  nn::Conv2d same(3, 2, 3, 1, "same", 1, 1, false);
  CHECK_FALSE(same.bias.defined());
  CHECK(same(zeros({1, 3, 6, 7})).shape() == Shape{1, 2, 6, 7});
  CHECK_THROWS_WITH_PARTS(conv(zeros({2, 3, 7, 9})), ShapeError, "conv2d", "[2, 3, 7, 9]");
  CHECK_THROWS_WITH_PARTS(nn::Conv2d(4, 6, 3, 1, 0, 1, 3), ValueError, "Conv2d", "groups 3");
}

TEST_CASE("Conv1d and ConvTranspose2d: shapes and initialisation") {
  Generator gen(2);
  nn::Conv1d c1(3, 5, 4, 2, 1, 1, 1, true, &gen);
  CHECK(c1.weight.shape() == Shape{5, 3, 4});
  CHECK(max_abs(c1.weight) <= 1.0 / std::sqrt(12.0));
  Tensor x1 = randn({2, 3, 10}, float32, &gen);
  CHECK(c1(x1).shape() == Shape{2, 5, 5});
  CHECK(test::allclose(c1(x1), conv1d(x1, c1.weight, c1.bias, 2, 1), 0, 0));
  // ConvTranspose2d's weight is [in, out/groups, kh, kw]; PyTorch's fan_in is then out/groups * k.
  nn::ConvTranspose2d ct(4, 6, 3, 2, 1, 1, 2, true, 1, &gen);
  CHECK(ct.weight.shape() == Shape{4, 3, 3, 3});
  CHECK(max_abs(ct.weight) <= 1.0 / std::sqrt(27.0));
  CHECK(max_abs(ct.bias) <= 1.0 / std::sqrt(27.0));
  CHECK(ct(zeros({1, 4, 5, 5})).shape() == Shape{1, 6, 10, 10});
}

TEST_CASE("Pooling layers and Flatten") {
  Tensor x = leaf({2, 3, 8, 6}, -1, 1, 3).detach();
  CHECK(test::allclose(nn::MaxPool2d(2)(x), max_pool2d(x, 2), 0, 0));
  CHECK(nn::MaxPool2d(3, 2, 1)(x).shape() == Shape{2, 3, 4, 3});
  CHECK(test::allclose(nn::AvgPool2d(2, 1)(x), avg_pool2d(x, 2, 1), 0, 0));
  CHECK(nn::AdaptiveAvgPool2d(Size2(5, 5))(x).shape() == Shape{2, 3, 5, 5});
  CHECK(nn::Flatten()(x).shape() == Shape{2, 144});
  CHECK(nn::Flatten(2)(x).shape() == Shape{2, 3, 48});
  CHECK(nn::MaxPool2d(2).num_parameters() == 0);
}

TEST_CASE("BatchNorm2d: batch statistics in training, running statistics in eval") {
  nn::BatchNorm2d bn(3);
  CHECK(bn.num_parameters() == 6);
  auto buffers = bn.named_buffers();
  REQUIRE(buffers.size() == 3);
  CHECK(buffers[0].first == "running_mean");
  CHECK(buffers[1].first == "running_var");
  CHECK(buffers[2].first == "num_batches_tracked");
  Tensor x = leaf({4, 3, 2, 2}, 0, 2, 4).detach().to(float32);
  Tensor y = bn(x);
  // Training: each channel of the output has mean 0; the running mean moved 10% towards the
  // batch mean.
  CHECK(test::allclose(y.mean({0, 2, 3}), zeros({3}), 1e-5));
  CHECK(test::allclose(bn.running_mean, x.mean({0, 2, 3}) * 0.1, 1e-6));
  CHECK(test::allclose(bn.running_var, ones({3}) * 0.9 + var(x, {0, 2, 3}) * 0.1, 1e-5));
  // Eval: the running statistics, and they stay put.
  bn.eval();
  Tensor mean_before = bn.running_mean.clone();
  Tensor ye = bn(x);
  Tensor want = (x - bn.running_mean.reshape({1, 3, 1, 1})) /
                (bn.running_var.reshape({1, 3, 1, 1}) + 1e-5).sqrt();
  CHECK(test::allclose(ye, want, 1e-5));
  CHECK(test::allclose(bn.running_mean, mean_before, 0, 0));
  CHECK_FALSE(test::allclose(ye, y, 1e-3));
  CHECK_THROWS_WITH_PARTS(bn(zeros({4, 2, 2, 2})), ShapeError, "BatchNorm2d", "[4, 2, 2, 2]");
  CHECK_THROWS_WITH_PARTS(bn(zeros({4, 3})), ShapeError, "BatchNorm2d", "[4, 3]");
}

TEST_CASE("BatchNorm1d on [N, C] and [N, C, L]; no running statistics means batch statistics") {
  nn::BatchNorm1d bn(2, 1e-5, 0.5);
  Tensor x = leaf({5, 2}, -1, 1, 5).detach().to(float32);
  bn(x);
  CHECK(test::allclose(bn.running_mean, x.mean({0}) * 0.5, 1e-6));
  CHECK(bn(zeros({3, 2, 4})).shape() == Shape{3, 2, 4});
  nn::BatchNorm1d plain(2, 1e-5, 0.1, /*affine=*/false, /*track_running_stats=*/false);
  CHECK(plain.num_parameters() == 0);
  CHECK(plain.named_buffers().empty());
  plain.eval();
  CHECK(test::allclose(plain(x).mean({0}), zeros({2}), 1e-5));
}

TEST_CASE("BatchNorm's running statistics are saved in and restored from checkpoints") {
  test::TempDir dir;
  auto make = [] {
    auto m = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Conv2d>(1, 2, 3), std::make_shared<nn::BatchNorm2d>(2)});
    return m;
  };
  auto a = make();
  for (int i = 0; i < 3; ++i) (*a)(leaf({4, 1, 5, 5}, 0, 3, 10 + i).detach().to(float32));
  a->eval();
  Tensor x = leaf({2, 1, 5, 5}, 0, 3, 20).detach().to(float32);
  Tensor ya = (*a)(x);
  nn::save_checkpoint(dir.file("bn.safetensors"), *a);
  auto b = make();
  b->eval();
  CHECK_FALSE(test::allclose((*b)(x), ya, 1e-3));
  nn::load_checkpoint(dir.file("bn.safetensors"), *b);
  CHECK(test::allclose((*b)(x), ya, 0, 0));
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>((*b)[1]);
  REQUIRE(bn);
  CHECK(test::allclose(bn->running_var,
                       std::dynamic_pointer_cast<nn::BatchNorm2d>((*a)[1])->running_var, 0, 0));
}

TEST_CASE("BatchNorm counts its training batches in num_batches_tracked") {
  nn::BatchNorm1d bn(2);
  REQUIRE(bn.num_batches_tracked.defined());
  CHECK(bn.num_batches_tracked.dtype() == int64);
  CHECK(bn.num_batches_tracked.dim() == 0);
  CHECK(bn.num_batches_tracked.item() == 0);
  Tensor x = leaf({5, 2}, -1, 1, 30).detach().to(float32);
  bn(x);
  bn(x);
  CHECK(bn.num_batches_tracked.item() == 2);
  bn.eval();
  bn(x);  // evaluation does not count
  CHECK(bn.num_batches_tracked.item() == 2);
  bn.to(float64);  // an integer buffer keeps its dtype
  CHECK(bn.num_batches_tracked.dtype() == int64);
  nn::BatchNorm1d plain(2, 1e-5, 0.1, true, /*track_running_stats=*/false);
  CHECK_FALSE(plain.num_batches_tracked.defined());
  CHECK_THROWS_WITH_PARTS(nn::BatchNorm2d(2, 1e-5, 1.5), ValueError, "BatchNorm2d", "momentum");
}

TEST_CASE("BatchNorm with momentum none keeps the cumulative average of the batch statistics") {
  nn::BatchNorm1d bn(2, 1e-5, std::nullopt);
  std::vector<Tensor> xs;
  for (int i = 0; i < 3; ++i) xs.push_back(leaf({4 + i, 2}, -1 + i, 2 + i, 40 + i).detach());
  bn.to(float64);
  for (const Tensor& x : xs) bn(x);
  CHECK(bn.num_batches_tracked.item() == 3);
  // Plain averages over the three batches: the initial 0 and 1 weigh nothing.
  Tensor mean_avg = (xs[0].mean({0}) + xs[1].mean({0}) + xs[2].mean({0})) / 3.0;
  Tensor var_avg = (var(xs[0], {0}) + var(xs[1], {0}) + var(xs[2], {0})) / 3.0;  // unbiased
  CHECK(test::allclose(bn.running_mean, mean_avg, 1e-12));
  CHECK(test::allclose(bn.running_var, var_avg, 1e-12));
}

TEST_CASE("BatchNorm's num_batches_tracked is saved; checkpoints without it load as 0") {
  test::TempDir dir;
  auto make = [] {
    return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Conv2d>(1, 2, 3), std::make_shared<nn::BatchNorm2d>(2)});
  };
  auto bn_of = [](const std::shared_ptr<nn::Sequential>& m) {
    return std::dynamic_pointer_cast<nn::BatchNorm2d>((*m)[1]);
  };
  auto a = make();
  for (int i = 0; i < 4; ++i) (*a)(leaf({4, 1, 5, 5}, 0, 3, 50 + i).detach().to(float32));
  const std::string path = dir.file("bn.safetensors");
  nn::save_checkpoint(path, *a);
  nn::Metadata meta;
  nn::StateDict saved = nn::load_safetensors(path, &meta);
  bool found = false;
  for (auto& [name, t] : saved)
    if (name == "1.num_batches_tracked") {
      found = true;
      CHECK(t.dtype() == int64);
      CHECK(t.item() == 4);
    }
  CHECK(found);
  auto b = make();
  nn::load_checkpoint(path, *b);
  CHECK(bn_of(b)->num_batches_tracked.item() == 4);

  // The same file without the counter, as written before it existed: loads strictly, count 0,
  // running statistics restored.
  nn::StateDict old;
  for (auto& [name, t] : saved)
    if (name != "1.num_batches_tracked") old.emplace_back(name, t);
  REQUIRE(old.size() + 1 == saved.size());
  const std::string old_path = dir.file("old.safetensors");
  nn::save_safetensors(old_path, old, meta);
  auto c = make();
  (*c)(leaf({4, 1, 5, 5}, 0, 3, 60).detach().to(float32));  // count 1 before loading
  nn::load_checkpoint(old_path, *c);
  CHECK(bn_of(c)->num_batches_tracked.item() == 0);
  CHECK(test::allclose(bn_of(c)->running_mean, bn_of(a)->running_mean, 0, 0));
  CHECK(c->load_state_dict(old).ok());
  // Other entries missing are still reported.
  nn::StateDict partial(old.begin() + 1, old.end());
  CHECK_THROWS_WITH_PARTS(c->load_state_dict(partial), ValueError, "missing");
}

TEST_CASE("GroupNorm: the op it wraps, and errors") {
  nn::GroupNorm gn(2, 4);
  CHECK(gn.num_parameters() == 8);
  Tensor x = leaf({2, 4, 3, 3}, -1, 1, 6).detach().to(float32);
  CHECK(test::allclose(gn(x), group_norm(x, 2), 1e-6));
  CHECK_THROWS_WITH_PARTS(nn::GroupNorm(3, 4), ValueError, "GroupNorm", "3 groups");
  CHECK_THROWS_WITH_PARTS(gn(zeros({2, 3, 3})), ShapeError, "GroupNorm", "[2, 3, 3]");
}

TEST_CASE("gradients through a Conv2d-BatchNorm2d-ReLU-MaxPool2d-Flatten-Linear stack (float64)") {
  Generator gen(7);
  auto m = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(2, 3, 3, 1, 1, 1, 1, true, &gen),
      std::make_shared<nn::BatchNorm2d>(3), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(12, 2, true, &gen)});
  m->to(float64);
  // Training mode updates the running statistics at every call; the values checked do not depend
  // on them.
  test::check_gradients([m](const TensorList& a) { return (*m)(a[0]); },
                        {leaf({2, 2, 4, 4}, -1, 1, 8)});
  // The parameters receive gradients of the right shapes.
  Tensor loss = square((*m)(leaf({2, 2, 4, 4}, -1, 1, 9).detach())).sum();
  loss.backward();
  for (auto& [name, p] : m->named_parameters()) {
    CAPTURE(name);
    REQUIRE(p.grad().defined());
    CHECK(p.grad().shape() == p.shape());
  }
}

TEST_CASE("LeNet-5 (the bench's cnn workload) learns a small fixed batch") {
  Generator gen(11);
  auto lenet = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(1, 6, 5, 1, 2, 1, 1, true, &gen), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(2),
      std::make_shared<nn::Conv2d>(6, 16, 5, 1, 0, 1, 1, true, &gen), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(400, 120, true, &gen), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(120, 84, true, &gen), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(84, 10, true, &gen)});
  Tensor x = randn({16, 1, 28, 28}, float32, &gen);
  Tensor y = randint(0, 10, {16}, &gen);
  nn::SGD opt(lenet->parameters(), {.lr = 0.05, .momentum = 0.9});
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    Tensor loss = nn::cross_entropy((*lenet)(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  CHECK(std::isfinite(last));
  CHECK(last < 0.5 * first);
}
