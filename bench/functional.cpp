// The costs docs/functional.md quotes:  bench_functional [--steps N]
//
//   hvp       a tanh MLP's loss (64-256-256-10, batch 64, float64, 85k parameters): the median time
//             of one gradient (ag::grad), of one hvp and of one vhp over all parameters, and their
//             ratios to the gradient.
//   jacobian  f(x) = tanh(W2 tanh(W1 x)), R^n -> R^m with a hidden layer of 64, float64: the
//             median time of the full Jacobian by the reverse strategy (m backward passes) and by
//             the forward one (n forward-mode passes), for n << m (n = 4, m = 256) and n >> m
//             (n = 256, m = 4).
// Medians of `--steps` timed runs after 2 untimed ones (threads: OMP_NUM_THREADS). The last line is
// `functional hvp/gradient <ratio>`.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"

namespace {

double median_us(const std::function<void()>& run, int steps) {
  for (int i = 0; i < 2; ++i) run();
  std::vector<double> t;
  for (int i = 0; i < steps; ++i) {
    auto a = std::chrono::steady_clock::now();
    run();
    t.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// The MLP's mean squared error as a function of its parameters (W, b per layer).
ag::Tensor mlp_loss(const ag::TensorList& p, const ag::Tensor& x, const ag::Tensor& y) {
  ag::Tensor h = x;
  for (size_t l = 0; l + 1 < p.size(); l += 2) {
    h = ag::linear(h, p[l], p[l + 1]);
    if (l + 2 < p.size()) h = ag::tanh(h);
  }
  ag::Tensor d = ag::sub(h, y);
  return ag::mean(ag::mul(d, d));
}

double bench_hvp(int steps) {
  ag::Generator g(0);
  const std::vector<int64_t> sizes{64, 256, 256, 10};
  ag::TensorList params, v;
  int64_t count = 0;
  for (size_t l = 1; l < sizes.size(); ++l) {
    double s = 1.0 / std::sqrt(static_cast<double>(sizes[l - 1]));
    params.push_back(ag::uniform({sizes[l], sizes[l - 1]}, -s, s, ag::float64, &g));
    params.push_back(ag::uniform({sizes[l]}, -s, s, ag::float64, &g));
  }
  for (const ag::Tensor& t : params) {
    v.push_back(ag::randn(t.shape(), ag::float64, &g));
    count += t.numel();
  }
  ag::Tensor x = ag::randn({64, sizes.front()}, ag::float64, &g);
  ag::Tensor y = ag::randn({64, sizes.back()}, ag::float64, &g);
  ag::ScalarFn f = [&](const ag::TensorList& p) { return mlp_loss(p, x, y); };

  double grad_us = median_us(
      [&] {
        ag::TensorList leaves;
        for (const ag::Tensor& t : params) leaves.push_back(t.detach().requires_grad_());
        ag::grad({f(leaves)}, leaves);
      },
      steps);
  double hvp_us = median_us([&] { ag::hvp(f, params, v); }, steps);
  double vhp_us = median_us([&] { ag::vhp(f, params, v); }, steps);
  fmt::print("hvp: tanh MLP 64-256-256-10, batch 64, float64, {} parameters\n", count);
  fmt::print("  {:<28} {:>12}  {:>14}\n", "", "median us", "x gradient");
  fmt::print("  {:<28} {:>12.1f}  {:>14.2f}\n", "gradient (ag::grad)", grad_us, 1.0);
  fmt::print("  {:<28} {:>12.1f}  {:>14.2f}\n", "hvp (forward-over-reverse)", hvp_us,
             hvp_us / grad_us);
  fmt::print("  {:<28} {:>12.1f}  {:>14.2f}\n", "vhp (reverse-over-reverse)", vhp_us,
             vhp_us / grad_us);
  return hvp_us / grad_us;
}

void bench_jacobian(int64_t n, int64_t m, int steps) {
  ag::Generator g(1);
  const int64_t hidden = 64;
  ag::Tensor W1 = ag::mul(ag::randn({hidden, n}, ag::float64, &g), 1.0 / std::sqrt(n));
  ag::Tensor W2 = ag::mul(ag::randn({m, hidden}, ag::float64, &g), 1.0 / std::sqrt(hidden));
  ag::Tensor x = ag::randn({n}, ag::float64, &g);
  ag::TensorFn f = [&](const ag::TensorList& in) {
    return ag::TensorList{ag::tanh(ag::matmul(W2, ag::tanh(ag::matmul(W1, in[0]))))};
  };
  double rev =
      median_us([&] { ag::jacobian(f, {x}, false, ag::JacobianStrategy::reverse); }, steps);
  double fwd =
      median_us([&] { ag::jacobian(f, {x}, false, ag::JacobianStrategy::forward); }, steps);
  fmt::print("  n = {:>4}, m = {:>4}   {:>14.1f}  {:>14.1f}  {:>16.2f}\n", n, m, rev, fwd,
             fwd / rev);
}

[[noreturn]] void usage() {
  fmt::print(stderr, "usage: bench_functional [--steps N]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 20;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) {
      steps = std::max(1, std::atoi(argv[++i]));
    } else {
      usage();
    }
  }
  try {
    double ratio = bench_hvp(steps);
    fmt::print("\njacobian of f(x) = tanh(W2 tanh(W1 x)), R^n -> R^m, hidden 64, float64\n");
    fmt::print("  {:<20} {:>14}  {:>14}  {:>16}\n", "", "reverse us", "forward us",
               "forward/reverse");
    bench_jacobian(4, 256, steps);
    bench_jacobian(256, 4, steps);
    fmt::print("functional hvp/gradient {:.2f}\n", ratio);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_functional: {}\n", e.what());
    return 1;
  }
  return 0;
}
