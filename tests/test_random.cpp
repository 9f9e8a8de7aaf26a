// Random tensors (ops/random.h): seeded reproducibility, ranges and moments of rand / uniform /
// randn / normal / randint, permutations, bernoulli, dropout (values, scaling, gradient, gradcheck
// with a fixed generator) and multinomial sampling, and the argument errors.
//
// Statistical checks use large samples and bounds of about six standard deviations of the
// estimate (the standard deviation is written next to each bound), so a correct generator fails
// one with probability below 1e-8, while a wrong mean, scale or probability is far outside.
// Every sample comes from a fixed seed, so each run draws the same numbers anyway.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "support.h"

using namespace ag;
using test::check_gradients;
using test::leaf;

namespace {

double mean_of(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}
double var_of(const std::vector<double>& v) {
  double m = mean_of(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / static_cast<double>(v.size());
}
double fraction(const std::vector<double>& v, double value) {
  return static_cast<double>(std::count(v.begin(), v.end(), value)) / static_cast<double>(v.size());
}

// |got - expected| <= tol, with the numbers in the failure message.
void check_near(double got, double expected, double tol, const char* what) {
  INFO(what << ": got " << got << ", expected " << expected << " +- " << tol);
  CHECK(std::abs(got - expected) <= tol);
}

std::vector<double> f64s(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST_CASE("the same seed gives the same tensors; another seed does not") {
  auto draw_all = [](uint64_t seed) {
    Generator g(seed);
    std::vector<double> r;
    for (const Tensor& t :
         {rand({50}, float64, &g), randn({51}, float64, &g), uniform({20}, -2, 3, float64, &g),
          normal({21}, 1, 2, float64, &g), randint(0, 1000, {30}, &g), randperm(40, &g),
          bernoulli(full({30}, 0.5, float64), &g), dropout(ones({30}, float64), 0.5, true, &g),
          multinomial(ones({10}, float64), 10, false, &g)}) {
      auto v = t.to_vector<double>();
      r.insert(r.end(), v.begin(), v.end());
    }
    return r;
  };
  CHECK(draw_all(42) == draw_all(42));
  CHECK(draw_all(42) != draw_all(43));
  // Two generators with different seeds give different numbers in each op.
  Generator a(1), b(2);
  CHECK(f64s(randn({20}, float64, &a)) != f64s(randn({20}, float64, &b)));
  CHECK(randperm(20, &a).to_vector<int64_t>() != randperm(20, &b).to_vector<int64_t>());

  // The default generator is reset by manual_seed.
  manual_seed(7);
  auto first = rand({10}).to_vector<float>();
  auto second = rand({10}).to_vector<float>();
  CHECK(first != second);  // the stream moves on
  manual_seed(7);
  CHECK(rand({10}).to_vector<float>() == first);
  manual_seed(8);
  CHECK(rand({10}).to_vector<float>() != first);

  // A copy of a generator continues the same sequence as the original.
  Generator g(5);
  (void)randn({3}, float64, &g);  // leaves a spare normal behind
  Generator copy = g;
  CHECK(f64s(randn({7}, float64, &g)) == f64s(randn({7}, float64, &copy)));
  // Re-seeding restarts the stream (after uniform draws).
  Generator h(9);
  auto u1 = f64s(rand({5}, float64, &h));
  h.seed(9);
  CHECK(f64s(rand({5}, float64, &h)) == u1);

  // float32 and float64 draw the same numbers, rounded.
  Generator g32(3), g64(3);
  auto x32 = rand({100}, float32, &g32).to_vector<double>();
  auto x64 = rand({100}, float64, &g64).to_vector<double>();
  for (size_t i = 0; i < x32.size(); ++i) CHECK(std::abs(x32[i] - x64[i]) < 1e-7);
}

TEST_CASE("Generator::state / set_state: a restored generator continues the same sequence") {
  Generator g(11);
  (void)randn({5}, float64, &g);  // odd count: a spare normal is cached in the state
  std::string saved = g.state();
  auto next = f64s(randn({9}, float64, &g));
  auto next_ints = randint(0, 1000, {6}, &g).to_vector<int64_t>();

  Generator other(99);  // another seed, and no spare
  other.set_state(saved);
  CHECK(f64s(randn({9}, float64, &other)) == next);
  CHECK(randint(0, 1000, {6}, &other).to_vector<int64_t>() == next_ints);
  CHECK(other.state() == g.state());

  CHECK_THROWS_WITH_PARTS(other.set_state("not a state"), ValueError, "Generator::set_state");
  CHECK_THROWS_WITH_PARTS(other.set_state(saved + " 7"), ValueError, "Generator::set_state");
  CHECK_THROWS_AS(other.set_state(saved.substr(0, saved.size() / 2)), ValueError);
  CHECK(other.state() == g.state());  // a refused text leaves the generator as it was
}

TEST_CASE("rand and uniform: range, mean and variance") {
  Generator g(1);
  const double n = 200000;
  Tensor r = rand({200000}, float64, &g);
  CHECK(r.shape() == Shape{200000});
  CHECK(r.dtype() == float64);
  auto u = f64s(r);
  CHECK(*std::min_element(u.begin(), u.end()) >= 0.0);
  CHECK(*std::max_element(u.begin(), u.end()) < 1.0);
  check_near(mean_of(u), 0.5, 0.004, "rand mean");     // sd sqrt(1/12/n) = 6.5e-4
  check_near(var_of(u), 1.0 / 12, 0.001, "rand var");  // sd sqrt((1/80-1/144)/n) = 1.7e-4
  // Each tenth of [0, 1) gets a tenth of the draws (sd sqrt(0.09/n) = 6.7e-4).
  std::vector<double> bins(10, 0);
  for (double x : u) bins[static_cast<size_t>(x * 10)] += 1;
  for (double b : bins) check_near(b / n, 0.1, 0.004, "rand decile");

  auto w = f64s(uniform({200000}, -3, 5, float64, &g));
  CHECK(*std::min_element(w.begin(), w.end()) >= -3.0);
  CHECK(*std::max_element(w.begin(), w.end()) < 5.0);
  CHECK(*std::min_element(w.begin(), w.end()) < -2.99);  // the whole range is reached
  CHECK(*std::max_element(w.begin(), w.end()) > 4.99);
  check_near(mean_of(w), 1.0, 0.035, "uniform mean");     // sd 8/sqrt(12 n) = 5.2e-3
  check_near(var_of(w), 64.0 / 12, 0.07, "uniform var");  // sd 64 * 1.7e-4 = 1.1e-2
  // lo == hi is allowed and gives that value.
  CHECK(f64s(uniform({4}, 2.5, 2.5, float64, &g)) == std::vector<double>(4, 2.5));

  Tensor f = rand({3, 4}, float32, &g);
  CHECK(f.dtype() == float32);
  CHECK(f.shape() == Shape{3, 4});
  CHECK(rand({}, float64, &g).shape() == Shape{});
  CHECK(rand({0, 5}, float64, &g).numel() == 0);
}

TEST_CASE("randn and normal: mean, variance, and the one-sigma mass") {
  Generator g(2);
  const double n = 200000;
  auto z = f64s(randn({200000}, float64, &g));
  check_near(mean_of(z), 0.0, 0.014, "randn mean");  // sd 1/sqrt(n) = 2.2e-3
  check_near(var_of(z), 1.0, 0.02, "randn var");     // sd sqrt(2/n) = 3.2e-3
  double within = static_cast<double>(
                      std::count_if(z.begin(), z.end(), [](double x) { return std::abs(x) < 1; })) /
                  n;
  check_near(within, 0.682689, 0.0065, "randn P(|z| < 1)");  // sd sqrt(.68 .32 / n) = 1.0e-3
  double third = 0;
  for (double x : z) third += x * x * x;
  check_near(third / n, 0.0, 0.055, "randn third moment");  // sd sqrt(15/n) = 8.7e-3

  auto m = f64s(normal({200000}, 3, 0.5, float64, &g));
  check_near(mean_of(m), 3.0, 0.007, "normal mean");           // sd 0.5/sqrt(n) = 1.1e-3
  check_near(std::sqrt(var_of(m)), 0.5, 0.005, "normal std");  // sd 0.5/sqrt(2n) = 7.9e-4
  CHECK(f64s(normal({3}, -1, 0, float64, &g)) == std::vector<double>(3, -1.0));  // std 0

  Tensor h = randn({3, 4}, float32, &g);
  CHECK(h.dtype() == float32);
  CHECK(h.shape() == Shape{3, 4});
}

TEST_CASE("randint: every integer of [lo, hi) equally often, nothing outside") {
  Generator g(3);
  const double n = 200000;
  Tensor ri = randint(-2, 3, {200000}, &g);
  CHECK(ri.dtype() == int64);
  std::map<int64_t, double> count;
  for (int64_t v : ri.to_vector<int64_t>()) count[v] += 1;
  REQUIRE(count.size() == 5);
  CHECK(count.begin()->first == -2);
  CHECK(count.rbegin()->first == 2);
  for (auto [v, c] : count) {
    INFO("value " << v);
    check_near(c / n, 0.2, 0.006, "randint frequency");  // sd sqrt(.16/n) = 8.9e-4
  }
  CHECK(randint(4, 5, {10}, &g).to_vector<int64_t>() == std::vector<int64_t>(10, 4));
  // A span that is not a power of two and far above 2^32.
  auto big = randint(0, 3'000'000'000'000LL, {1000}, &g).to_vector<int64_t>();
  CHECK(*std::min_element(big.begin(), big.end()) >= 0);
  CHECK(*std::max_element(big.begin(), big.end()) < 3'000'000'000'000LL);
  CHECK(*std::max_element(big.begin(), big.end()) > 2'000'000'000'000LL);
  CHECK(randint(0, 3, {2, 3}, &g).shape() == Shape{2, 3});
}

TEST_CASE("randperm: a permutation, each position uniformly filled") {
  Generator g(4);
  auto p = randperm(1000, &g).to_vector<int64_t>();
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> expect(1000);
  std::iota(expect.begin(), expect.end(), 0);
  CHECK(sorted == expect);
  CHECK(p != expect);
  CHECK(randperm(1000, &g).dtype() == int64);
  CHECK(randperm(0, &g).numel() == 0);
  CHECK(randperm(1, &g).to_vector<int64_t>() == std::vector<int64_t>{0});
  // Over 5000 permutations of 5, position 0 holds each value 1000 times (sd 28).
  std::vector<double> first(5, 0);
  for (int i = 0; i < 5000; ++i) first[static_cast<size_t>(randperm(5, &g).at({0}))] += 1;
  for (double c : first) check_near(c, 1000, 170, "randperm first entry");
}

TEST_CASE("bernoulli: 0/1 values with the given probabilities, elementwise") {
  Generator g(5);
  auto b = f64s(bernoulli(full({100000}, 0.3, float64), &g));
  CHECK(std::all_of(b.begin(), b.end(), [](double v) { return v == 0.0 || v == 1.0; }));
  check_near(mean_of(b), 0.3, 0.009, "bernoulli(0.3) mean");  // sd sqrt(.21/n) = 1.4e-3
  CHECK(bernoulli(zeros({50}), &g).sum().item() == 0);
  CHECK(bernoulli(ones({50}), &g).sum().item() == 50);
  // Per-element probabilities: columns with p = 0, 1, 0.9.
  Tensor p = Tensor::from_vector(std::vector<double>{0, 1, 0.9}).expand({20000, 3});
  Tensor s = bernoulli(p, &g);
  CHECK(s.shape() == Shape{20000, 3});
  auto col = f64s(s.mean({0}));
  CHECK(col[0] == 0);
  CHECK(col[1] == 1);
  check_near(col[2], 0.9, 0.013, "bernoulli(0.9) column mean");  // sd sqrt(.09/20000) = 2.1e-3
  // The output takes a floating p's dtype; integer p gives float32.
  CHECK(bernoulli(full({2}, 0.5, float64), &g).dtype() == float64);
  CHECK(bernoulli(full({2}, 0.5), &g).dtype() == float32);
  Tensor from_int = bernoulli(Tensor::from_vector(std::vector<int64_t>{0, 1}), &g);
  CHECK(from_int.dtype() == float32);
  CHECK(f64s(from_int) == std::vector<double>{0, 1});
  CHECK_THROWS_WITH_PARTS(bernoulli(full({2}, 1.5)), ValueError, "bernoulli", "1.5", "[2]");
  CHECK_THROWS_WITH_PARTS(bernoulli(Tensor::from_vector(std::vector<double>{0.5, -0.25})),
                          ValueError, "bernoulli", "-0.25");
  CHECK_THROWS_WITH_PARTS(bernoulli(Tensor::from_vector(std::vector<double>{std::nan("")})),
                          ValueError, "bernoulli", "nan");
}

TEST_CASE("dropout: zeroes about p, scales survivors by 1/(1-p), identity cases") {
  Generator g(6);
  const double p = 0.25;
  Tensor x = ones({100000}, float64);
  auto y = f64s(dropout(x, p, true, &g));
  double zeros_frac = fraction(y, 0.0), scaled_frac = fraction(y, 1.0 / (1 - p));
  CHECK(zeros_frac + scaled_frac == 1.0);                     // every entry is 0 or exactly 1/(1-p)
  check_near(zeros_frac, p, 0.009, "dropout zero fraction");  // sd sqrt(p(1-p)/n) = 1.4e-3
  check_near(mean_of(y), 1.0, 0.011, "dropout keeps the mean");  // sd sqrt(p/(1-p)/n) = 1.8e-3

  // Survivors keep their own value, scaled.
  Tensor v = arange(1, 101, 1, float64);
  auto out = f64s(dropout(v, 0.5, true, &g));
  auto in = f64s(v);
  for (size_t i = 0; i < in.size(); ++i) CHECK((out[i] == 0 || out[i] == 2 * in[i]));
  // float32 stays float32, shapes are kept.
  Tensor d32 = dropout(ones({4, 5}), 0.5, true, &g);
  CHECK(d32.dtype() == float32);
  CHECK(d32.shape() == Shape{4, 5});

  // Identity when not training or p = 0 (the same tensor back); p = 1 zeroes everything.
  Tensor z = arange(1, 11, 1, float64);
  CHECK(dropout(z, 0.5, false, &g).same(z));
  CHECK(dropout(z, 0.0, true, &g).same(z));
  auto all_dropped = f64s(dropout(z, 1.0, true, &g));
  CHECK(all_dropped == std::vector<double>(10, 0.0));

  // The same generator state gives the same mask.
  Generator g1(9), g2(9);
  CHECK(f64s(dropout(z, 0.5, true, &g1)) == f64s(dropout(z, 0.5, true, &g2)));

  CHECK_THROWS_WITH_PARTS(dropout(z, 1.5), ValueError, "dropout", "1.5", "[10]");
  CHECK_THROWS_WITH_PARTS(dropout(z, -0.1), ValueError, "dropout", "-0.1");
  CHECK_THROWS_WITH_PARTS(dropout(z, std::nan("")), ValueError, "dropout", "nan");
  CHECK_THROWS_WITH_PARTS(dropout(arange(4, int64), 0.5), DtypeError, "dropout", "int64", "[4]");
}

TEST_CASE("dropout's gradient is mask / (1 - p)") {
  const double p = 0.4;
  Generator g(7);
  Tensor x = leaf({50, 40}, 0.5, 2.0, 8);  // no zero entries: the mask is y / x
  Tensor y = dropout(x, p, true, &g);
  Tensor up = leaf({50, 40}, -1, 1, 9).detach();  // an upstream gradient
  y.backward(up);
  auto xs = f64s(x.detach()), ys = f64s(y.detach()), us = f64s(up), gs = f64s(x.grad());
  int dropped = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    double mask = ys[i] == 0 ? 0.0 : 1.0;
    if (mask == 1.0) CHECK(std::abs(ys[i] - xs[i] / (1 - p)) < 1e-12);
    CHECK(std::abs(gs[i] - us[i] * mask / (1 - p)) < 1e-12);
    dropped += ys[i] == 0;
  }
  CHECK(dropped > 0);
  CHECK(dropped < 2000);
  // p = 1: output and gradient are zero; not training: gradient passes unchanged.
  Tensor w = leaf({3}, 0.5, 1, 10);
  dropout(w, 1.0, true, &g).sum().backward();
  CHECK(f64s(w.grad()) == std::vector<double>(3, 0.0));
  w.zero_grad();
  dropout(w, 0.5, false, &g).sum().backward();
  CHECK(f64s(w.grad()) == std::vector<double>(3, 1.0));
}

TEST_CASE("dropout passes gradcheck and gradgradcheck with a fixed generator") {
  // A fresh generator per call draws the same mask every time the check evaluates the function.
  check_gradients(
      [](const TensorList& v) {
        Generator g(11);
        return dropout(v[0], 0.4, true, &g);
      },
      {leaf({4, 5})});
  check_gradients(
      [](const TensorList& v) {
        Generator g(12);
        return dropout(v[0], 0.3, true, &g) * v[0];  // non-zero second derivative
      },
      {leaf({4, 5}, -1, 1, 2)});
  // Broadcast: dropout of a [5] vector multiplied into a [4, 5] matrix.
  check_gradients(
      [](const TensorList& v) {
        Generator g(13);
        return dropout(v[0], 0.5, true, &g) * v[1];
      },
      {leaf({5}, -1, 1, 3), leaf({4, 5}, -1, 1, 4)});
}

TEST_CASE("multinomial with replacement: frequencies follow the probabilities") {
  Generator g(14);
  const double n = 50000;
  Tensor probs = Tensor::from_vector(std::vector<double>{0.1, 0.0, 0.6, 0.3});
  Tensor s = multinomial(probs, 50000, true, &g);
  CHECK(s.dtype() == int64);
  CHECK(s.shape() == Shape{50000});
  std::vector<double> count(4, 0);
  for (int64_t v : s.to_vector<int64_t>()) {
    REQUIRE(v >= 0);
    REQUIRE(v < 4);
    count[static_cast<size_t>(v)] += 1;
  }
  CHECK(count[1] == 0);                                       // zero probability: never drawn
  check_near(count[0] / n, 0.1, 0.009, "class 0 frequency");  // sd sqrt(.09/n) = 1.3e-3
  check_near(count[2] / n, 0.6, 0.014, "class 2 frequency");  // sd sqrt(.24/n) = 2.2e-3
  check_near(count[3] / n, 0.3, 0.013, "class 3 frequency");  // sd sqrt(.21/n) = 2.0e-3

  // Unnormalised weights, float32, a batch of rows: each row sampled from its own weights.
  Tensor rows = Tensor::from_vector(std::vector<float>{1, 3, 0, 0, 0, 5}, {2, 3});
  Tensor b = multinomial(rows, 20000, true, &g);
  CHECK(b.shape() == Shape{2, 20000});
  auto r0 = f64s(b[0]), r1 = f64s(b[1]);
  CHECK(fraction(r0, 2) == 0);
  check_near(fraction(r0, 1), 0.75, 0.02, "row 0 class 1");  // sd sqrt(.1875/20000) = 3.1e-3
  CHECK(fraction(r1, 2) == 1.0);                             // a single positive weight
  CHECK(multinomial(probs, 0, true, &g).shape() == Shape{0});
  CHECK(multinomial(ones({0, 3}), 2, true, &g).shape() == Shape{0, 2});
}

TEST_CASE("multinomial without replacement: distinct indices, never a zero weight") {
  Generator g(15);
  // Drawing every category gives a permutation.
  auto all = multinomial(ones({6}, float64), 6, false, &g).to_vector<int64_t>();
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<int64_t>{0, 1, 2, 3, 4, 5});
  // As many draws as positive weights: exactly the positive categories, whatever the seed (the
  // running total must not keep rounding residue that lets a zero-weight category in).
  Tensor w = Tensor::from_vector(std::vector<double>{0.1, 0.0, 0.2, 0.3, 0.0}, {1, 5});
  for (uint64_t seed = 0; seed < 300; ++seed) {
    Generator gs(seed);
    auto d = multinomial(w, 3, false, &gs).to_vector<int64_t>();
    std::sort(d.begin(), d.end());
    CHECK(d == std::vector<int64_t>{0, 2, 3});
  }
  // The first draw follows the weights: P(first = 3) = 0.3 / 0.6 (sd sqrt(.25/4000) = 7.9e-3).
  double first3 = 0;
  for (int i = 0; i < 4000; ++i) first3 += multinomial(w, 2, false, &g).at({0, 0}) == 3;
  check_near(first3 / 4000, 0.5, 0.05, "first draw without replacement");
  // More draws than positive weights, or than categories, is an error.
  CHECK_THROWS_WITH_PARTS(multinomial(w, 4, false, &g), ValueError, "multinomial", "4", "[1, 5]",
                          "3 non-zero");
  CHECK_THROWS_WITH_PARTS(multinomial(ones({3}), 4, false, &g), ValueError, "multinomial", "4",
                          "3 categories", "[3]");
}

TEST_CASE("multinomial rejects invalid probabilities and arguments") {
  auto d = [](std::vector<double> v) { return Tensor::from_vector(v); };
  CHECK_THROWS_WITH_PARTS(multinomial(d({0.5, -0.1}), 1), ValueError, "multinomial", "-0.1",
                          "index 1", "[2]");
  CHECK_THROWS_WITH_PARTS(multinomial(d({0.5, std::nan("")}), 1), ValueError, "multinomial", "nan");
  CHECK_THROWS_WITH_PARTS(multinomial(d({1, HUGE_VAL}), 1), ValueError, "multinomial", "inf");
  CHECK_THROWS_WITH_PARTS(multinomial(zeros({3}, float64), 1, true), ValueError, "multinomial",
                          "no positive", "[3]");
  // One bad row in a batch is enough.
  CHECK_THROWS_WITH_PARTS(
      multinomial(Tensor::from_vector(std::vector<double>{1, 2, 0, 0}, {2, 2}), 1, true),
      ValueError, "multinomial", "row 1", "[2, 2]");
  CHECK_THROWS_WITH_PARTS(multinomial(zeros({2, 2, 2}), 1), ShapeError, "multinomial", "[2, 2, 2]");
  CHECK_THROWS_WITH_PARTS(multinomial(scalar_tensor(1.0), 1), ShapeError, "multinomial", "[]");
  CHECK_THROWS_WITH_PARTS(multinomial(ones({3}), -1, true), ValueError, "multinomial", "-1");
}

TEST_CASE("argument errors of the samplers") {
  CHECK_THROWS_WITH_PARTS(uniform({2}, 1, 0), ValueError, "uniform", "1", "0");
  CHECK_THROWS_WITH_PARTS(uniform({2}, std::nan(""), 1), ValueError, "uniform", "nan");
  CHECK_THROWS_WITH_PARTS(normal({2}, 0, -1), ValueError, "normal", "-1");
  CHECK_THROWS_WITH_PARTS(normal({2}, 0, std::nan("")), ValueError, "normal", "nan");
  CHECK_THROWS_WITH_PARTS(randint(3, 3, {2}), ValueError, "randint", "[3, 3)");
  CHECK_THROWS_WITH_PARTS(randint(5, 1, {2}), ValueError, "randint", "[5, 1)");
  CHECK_THROWS_WITH_PARTS(randperm(-1), ValueError, "randperm", "-1");
  CHECK_THROWS_WITH_PARTS(rand({2, -3}), ShapeError, "[2, -3]");
}

TEST_CASE("re-seeding a generator reproduces a fresh one, even after an odd number of normals") {
  Generator g(5);
  (void)randn({3}, float64, &g);  // leaves a cached second normal behind
  g.seed(21);
  Generator fresh(21);
  CHECK(randn({5}, float64, &g).to_vector<double>() ==
        randn({5}, float64, &fresh).to_vector<double>());
}
