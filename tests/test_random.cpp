// Random tensors from the seeded generator: reproducibility, ranges and moments (loose bounds many
// standard deviations wide, so they cannot fail by chance), permutations, bernoulli, dropout
// (values, scaling, gradient) and multinomial sampling, and the argument errors.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "support.h"

using namespace ag;

namespace {

double mean_of(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}
double var_of(const std::vector<double>& v) {
  double m = mean_of(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / static_cast<double>(v.size());
}

}  // namespace

TEST_CASE("the same seed gives the same tensors; another seed does not") {
  Generator a(42), b(42), c(43);
  CHECK(randn({100}, float64, &a).to_vector<double>() ==
        randn({100}, float64, &b).to_vector<double>());
  CHECK(rand({100}, float64, &a).to_vector<double>() ==
        rand({100}, float64, &b).to_vector<double>());
  CHECK(randn({100}, float64, &a).to_vector<double>() !=
        randn({100}, float64, &c).to_vector<double>());
  manual_seed(7);
  auto first = rand({10}).to_vector<float>();
  manual_seed(7);
  CHECK(rand({10}).to_vector<float>() == first);
}

TEST_CASE("rand, uniform, randn, normal, randint: ranges and moments") {
  Generator g(1);
  const int64_t n = 200000;
  auto u = rand({n}, float64, &g).to_vector<double>();
  CHECK(*std::min_element(u.begin(), u.end()) >= 0.0);
  CHECK(*std::max_element(u.begin(), u.end()) < 1.0);
  CHECK(mean_of(u) == doctest::Approx(0.5).epsilon(0.01));
  CHECK(var_of(u) == doctest::Approx(1.0 / 12).epsilon(0.02));
  auto w = uniform({n}, -3, 5, float64, &g).to_vector<double>();
  CHECK(*std::min_element(w.begin(), w.end()) >= -3.0);
  CHECK(*std::max_element(w.begin(), w.end()) < 5.0);
  CHECK(mean_of(w) == doctest::Approx(1.0).epsilon(0.02));
  auto z = randn({n}, float64, &g).to_vector<double>();
  CHECK(std::abs(mean_of(z)) < 0.02);
  CHECK(var_of(z) == doctest::Approx(1.0).epsilon(0.02));
  auto m = normal({n}, 3, 0.5, float64, &g).to_vector<double>();
  CHECK(mean_of(m) == doctest::Approx(3.0).epsilon(0.01));
  CHECK(std::sqrt(var_of(m)) == doctest::Approx(0.5).epsilon(0.02));
  CHECK(randn({3, 4}).dtype() == float32);
  CHECK(randn({3, 4}).shape() == Shape{3, 4});
  Tensor ri = randint(-2, 3, {n}, &g);
  CHECK(ri.dtype() == int64);
  auto rv = ri.to_vector<int64_t>();
  std::set<int64_t> seen(rv.begin(), rv.end());
  CHECK(seen == std::set<int64_t>{-2, -1, 0, 1, 2});
}

TEST_CASE("randperm is a permutation; bernoulli follows its probabilities") {
  Generator g(2);
  auto p = randperm(1000, &g).to_vector<int64_t>();
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> expect(1000);
  std::iota(expect.begin(), expect.end(), 0);
  CHECK(sorted == expect);
  CHECK(p != expect);
  CHECK(randperm(0, &g).numel() == 0);
  Tensor probs = full({100000}, 0.3, float64);
  auto b = bernoulli(probs, &g).to_vector<double>();
  CHECK(std::all_of(b.begin(), b.end(), [](double v) { return v == 0.0 || v == 1.0; }));
  CHECK(mean_of(b) == doctest::Approx(0.3).epsilon(0.03));
  CHECK(bernoulli(zeros({50}), &g).sum().item() == 0);
  CHECK(bernoulli(ones({50}), &g).sum().item() == 50);
}

TEST_CASE("dropout: zeroes about p, scales survivors by 1/(1-p), gradient is mask/(1-p)") {
  Generator g(3);
  Tensor x = ones({100000}, float64).requires_grad_();
  Tensor y = dropout(x, 0.25, true, &g);
  auto yv = y.to_vector<double>();
  int64_t zeros_count = 0, scaled = 0;
  for (double v : yv) {
    if (v == 0) ++zeros_count;
    if (std::abs(v - 1.0 / 0.75) < 1e-12) ++scaled;
  }
  CHECK(zeros_count + scaled == 100000);
  CHECK(static_cast<double>(zeros_count) / 100000 == doctest::Approx(0.25).epsilon(0.04));
  y.sum().backward();
  CHECK(x.grad().to_vector<double>() == yv);  // x = 1, so the output is the gradient factor
  // Identity when not training or p = 0; all zeros for p = 1.
  Tensor z = arange(1, 11, 1, float64);
  CHECK(dropout(z, 0.5, false, &g).to_vector<double>() == z.to_vector<double>());
  CHECK(dropout(z, 0.0, true, &g).to_vector<double>() == z.to_vector<double>());
  CHECK(dropout(z, 1.0, true, &g).sum().item() == 0);
  // The same generator state gives the same mask.
  Generator g1(9), g2(9);
  CHECK(dropout(z, 0.5, true, &g1).to_vector<double>() ==
        dropout(z, 0.5, true, &g2).to_vector<double>());
  CHECK_THROWS_WITH_PARTS(dropout(z, 1.5), ValueError, "dropout", "1.5");
}

TEST_CASE("dropout's gradient passes gradcheck with a fixed mask") {
  Tensor x = test::leaf({4, 5});
  auto f = [](const TensorList& v) {
    Generator g(11);  // a fresh generator per call: the same mask every time
    return dropout(v[0], 0.4, true, &g) * v[0];
  };
  test::check_gradients(f, {x});
}

TEST_CASE(
    "multinomial: frequencies follow the probabilities; zero-probability classes never come") {
  Generator g(4);
  Tensor probs = Tensor::from_vector(std::vector<double>{0.1, 0.0, 0.6, 0.3});
  auto s = multinomial(probs, 50000, true, &g).to_vector<int64_t>();
  std::vector<double> count(4, 0);
  for (int64_t v : s) count[static_cast<size_t>(v)] += 1;
  CHECK(count[1] == 0);
  CHECK(count[0] / 50000 == doctest::Approx(0.1).epsilon(0.1));
  CHECK(count[2] / 50000 == doctest::Approx(0.6).epsilon(0.03));
  CHECK(count[3] / 50000 == doctest::Approx(0.3).epsilon(0.05));
  // Unnormalised weights, a batch of rows, without replacement: distinct indices.
  Tensor rows = Tensor::from_vector(std::vector<double>{1, 1, 1, 1, 0, 5, 0, 5}, {2, 4});
  Tensor d = multinomial(rows, 2, false, &g);
  CHECK(d.shape() == Shape{2, 2});
  auto dv = d.to_vector<int64_t>();
  CHECK(dv[0] != dv[1]);
  CHECK(std::set<int64_t>{dv[2], dv[3]} == std::set<int64_t>{1, 3});
  CHECK_THROWS_WITH_PARTS(multinomial(Tensor::from_vector(std::vector<double>{0.5, -0.1}), 1),
                          ValueError, "multinomial", "-0.1");
  CHECK_THROWS_WITH_PARTS(multinomial(zeros({3}, float64), 1), ValueError, "multinomial");
  CHECK_THROWS_WITH_PARTS(multinomial(zeros({2, 2, 2}), 1), ShapeError, "multinomial", "[2, 2, 2]");
  CHECK_THROWS_WITH_PARTS(multinomial(ones({3}), 4, false), ValueError, "multinomial", "4", "3");
}

TEST_CASE("argument errors") {
  CHECK_THROWS_WITH_PARTS(uniform({2}, 1, 0), ValueError, "uniform");
  CHECK_THROWS_WITH_PARTS(normal({2}, 0, -1), ValueError, "normal");
  CHECK_THROWS_WITH_PARTS(randint(3, 3, {2}), ValueError, "randint", "[3, 3)");
  CHECK_THROWS_WITH_PARTS(randperm(-1), ValueError, "randperm");
  CHECK_THROWS_WITH_PARTS(bernoulli(full({2}, 1.5)), ValueError, "bernoulli", "1.5");
}
