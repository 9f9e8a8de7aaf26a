// Second derivatives from the engine (autograd/functional.h), put to work and checked by hand.
//
// Part 1: logistic regression fitted two ways from the same start, until the gradient norm is
// below 1e-10 (or an iteration cap):
//   gradient descent  w <- w - eta grad L(w),        eta = 1 / (an upper bound of H's eigenvalues)
//   Newton's method   w <- w - H(w)^-1 grad L(w),    H = ag::hessian(L, w), the engine's Hessian
// printing iterations and time of both, and plotting the gradient norm against both.
//
// Part 2: the Hessian of the article's small network (4-5-3, sigmoid hidden layer, softmax and
// cross-entropy, batch of 8: the network whose tape tutorial section 8 draws) with respect to all
// 43 parameters, by the engine and by explicit formulas derived by hand (hand_hessian below),
// side by side. The last line is the largest difference between the two.
//
//   newton [output folder, default demo-output] [--samples N] [--gd-cap N]
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli.h"
#include "nn/nn.h"
#include "plot.h"

using ag::Tensor;
using ag::TensorList;

namespace {

struct Settings {
  std::string dir = "demo-output";
  int64_t samples = 500;
  int64_t gd_cap = 20000;  // gradient descent stops here if it has not reached the tolerance
};

[[noreturn]] void usage(const std::string& problem) {
  if (!problem.empty()) fmt::print(stderr, "newton: {}\n", problem);
  fmt::print(stderr, "usage: newton [output folder] [--samples N] [--gd-cap N]\n");
  std::exit(problem.empty() ? 0 : 2);
}

Settings parse(int argc, char** argv) {
  Settings s;
  bool have_dir = false;
  for (int i = 1; i < argc; ++i) {
    std::string opt = argv[i];
    if (opt == "-h" || opt == "--help") usage("");
    if (opt.rfind("--", 0) != 0) {
      if (have_dir) usage(fmt::format("unexpected argument '{}'", opt));
      s.dir = opt, have_dir = true;
      continue;
    }
    if (i + 1 >= argc) usage(fmt::format("unknown option or missing value: '{}'", opt));
    std::string v = argv[++i];
    if (opt == "--samples") {
      s.samples = examples::parse_int(opt, v, 10, usage);
    } else if (opt == "--gd-cap") {
      s.gd_cap = examples::parse_int(opt, v, 1, usage);
    } else {
      usage(fmt::format("unknown option '{}'", opt));
    }
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------
// Part 1: logistic regression.

constexpr double kTolerance = 1e-10;

// n samples of 5 features (two of them strongly correlated, which makes the problem
// ill-conditioned: slow for gradient descent, not for Newton) and a column of ones for the
// intercept; labels drawn from the logistic model itself, so the classes overlap and the loss has
// a minimum.
struct Data {
  Tensor X, y;  // [n, 6], [n] of 0/1, float64
};

Data make_data(int64_t n) {
  ag::Generator g(2024);
  Tensor f = ag::randn({n, 5}, ag::float64, &g);
  Tensor c0 = f.select(1, 0);
  Tensor c1 = ag::add(c0, ag::mul(f.select(1, 1), 0.1));  // nearly a copy of feature 0
  Tensor X = ag::stack(
      {c0, c1, f.select(1, 2), f.select(1, 3), f.select(1, 4), ag::ones({n}, ag::float64)}, 1);
  Tensor w_true = Tensor::from_vector(std::vector<double>{1.5, -1.0, 0.8, 0.0, -0.5, 0.3});
  Tensor p = ag::sigmoid(ag::matmul(X, w_true));
  Tensor y = ag::lt(ag::uniform({n}, 0.0, 1.0, ag::float64, &g), p).to(ag::float64);
  return {X, y};
}

// The mean logistic loss, log(1 + e^z) - y z with z = X w.
Tensor logistic_loss(const Data& d, const Tensor& w) {
  Tensor z = ag::matmul(d.X, w);
  return ag::mean(ag::sub(ag::softplus(z), ag::mul(d.y, z)));
}

double norm2(const Tensor& t) { return std::sqrt(ag::sum(ag::mul(t, t)).item()); }

// Solves H s = g for a symmetric positive definite H [d, d] (Cholesky, H = L L^T).
std::vector<double> solve_spd(std::vector<double> H, std::vector<double> g, size_t d) {
  for (size_t j = 0; j < d; ++j) {
    double s = H[j * d + j];
    for (size_t k = 0; k < j; ++k) s -= H[j * d + k] * H[j * d + k];
    if (!(s > 0)) throw ag::ValueError("newton: the Hessian is not positive definite");
    H[j * d + j] = std::sqrt(s);
    for (size_t i = j + 1; i < d; ++i) {
      double t = H[i * d + j];
      for (size_t k = 0; k < j; ++k) t -= H[i * d + k] * H[j * d + k];
      H[i * d + j] = t / H[j * d + j];
    }
  }
  for (size_t i = 0; i < d; ++i) {  // L u = g
    for (size_t k = 0; k < i; ++k) g[i] -= H[i * d + k] * g[k];
    g[i] /= H[i * d + i];
  }
  for (size_t i = d; i-- > 0;) {  // L^T s = u
    for (size_t k = i + 1; k < d; ++k) g[i] -= H[k * d + i] * g[k];
    g[i] /= H[i * d + i];
  }
  return g;
}

// One run: the gradient norm and the loss after each recorded iteration, with the time spent.
struct Run {
  std::string name;
  std::vector<double> iteration, seconds, grad_norm, loss;
  int64_t iterations = 0;
  double total_seconds = 0;
  bool converged = false;
};

// Records iteration k: all of the first 100, then 90 per decade (the plots and the CSV stay small
// when gradient descent runs for tens of thousands of iterations).
bool worth_recording(int64_t k) {
  int64_t step = 1;
  while (step * 100 <= k) step *= 10;
  return k % step == 0;
}

// Runs `step` (w -> next w, returning the gradient norm and the loss at w) until the gradient norm
// is below the tolerance or `cap` iterations are done.
template <class Step>
Run iterate(const std::string& name, Tensor w, int64_t cap, Step step) {
  Run r;
  r.name = name;
  double elapsed = 0;
  for (int64_t k = 0;; ++k) {
    auto t0 = std::chrono::steady_clock::now();
    auto [gnorm, loss, next] = step(w);
    elapsed += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // gnorm and loss are those of w, the iterate after k iterations (at the time spent so far,
    // minus the step just taken from it).
    bool done = gnorm <= kTolerance || k == cap;
    if (worth_recording(k) || done) {
      r.iteration.push_back(static_cast<double>(k));
      r.seconds.push_back(r.total_seconds);
      r.grad_norm.push_back(gnorm);
      r.loss.push_back(loss);
    }
    if (done) {
      r.iterations = k;
      r.converged = gnorm <= kTolerance;
      return r;
    }
    r.total_seconds = elapsed;
    w = next;
  }
}

// Largest eigenvalue of X^T X / (4 n), the bound of the logistic loss's Hessian, by power
// iteration.
double curvature_bound(const Data& d) {
  ag::NoGradGuard plain;
  const double n = static_cast<double>(d.X.size(0));
  Tensor A = ag::div(ag::matmul(d.X.t(), d.X), ag::scalar_tensor(4.0 * n, ag::float64));
  Tensor v = ag::ones({A.size(0)}, ag::float64);
  double lambda = 0;
  for (int i = 0; i < 500; ++i) {
    Tensor Av = ag::matmul(A, v);
    lambda = norm2(Av) / norm2(v);
    v = ag::div(Av, ag::scalar_tensor(norm2(Av), ag::float64));
  }
  return lambda;
}

std::vector<Run> fit_logistic_regression(const Settings& s, plot::Csv& csv) {
  Data data = make_data(s.samples);
  const int64_t d = data.X.size(1);
  auto loss_fn = [&data](const Tensor& w) { return logistic_loss(data, w); };
  Tensor w0 = ag::zeros({d}, ag::float64);

  fmt::print(
      "Logistic regression, {} samples, {} weights (5 features, two nearly equal, and an "
      "intercept), float64\n",
      s.samples, d);
  // The engine's Hessian at the start against the closed form X^T diag(p (1 - p)) X / n.
  {
    Tensor H = ag::hessian(loss_fn, w0);
    Tensor p = ag::sigmoid(ag::matmul(data.X, w0));
    Tensor D = ag::mul(p, ag::rsub(p, 1.0));
    Tensor closed = ag::div(ag::matmul(data.X.t(), ag::mul(data.X, D.unsqueeze(1))),
                            ag::scalar_tensor(static_cast<double>(s.samples), ag::float64));
    double diff = ag::max(ag::abs(ag::sub(H, closed))).item();
    fmt::print(
        "  Hessian at w = 0: engine vs X^T diag(p (1 - p)) X / n, max abs difference {:.3e}\n",
        diff);
  }
  const double lr = 1.0 / curvature_bound(data);
  fmt::print("  gradient descent step size 1 / max eigenvalue of X^T X / (4 n) = {:.4f}\n", lr);

  // Loss and gradient: one vjp (reverse mode) of the loss.
  auto loss_and_grad = [&](const Tensor& w) {
    auto [out, g] = ag::vjp([&](const TensorList& a) { return TensorList{loss_fn(a[0])}; }, {w});
    return std::pair<double, Tensor>{out[0].item(), g[0]};
  };
  auto gd_step = [&](const Tensor& w) {
    auto [loss, g] = loss_and_grad(w);
    Tensor next = ag::sub(w, ag::mul(g, lr));
    return std::tuple<double, double, Tensor>{norm2(g), loss, next};
  };
  auto newton_step = [&](const Tensor& w) {
    auto [loss, g] = loss_and_grad(w);
    Tensor H = ag::hessian(loss_fn, w);
    std::vector<double> s_vec = solve_spd(H.to_vector<double>(), g.to_vector<double>(), d);
    Tensor next = ag::sub(w, Tensor::from_vector(s_vec));
    return std::tuple<double, double, Tensor>{norm2(g), loss, next};
  };
  std::vector<Run> runs;
  runs.push_back(iterate("Newton", w0, 100, newton_step));
  runs.push_back(iterate("gradient descent", w0, s.gd_cap, gd_step));

  fmt::print("\n  {:<18} {:>10} {:>11} {:>13} {:>20} {:>12}\n", "method", "iterations", "seconds",
             "us/iteration", "final loss", "|grad|");
  for (const Run& r : runs) {
    fmt::print("  {:<18} {:>10} {:>11.4f} {:>13.1f} {:>20.15f} {:>12.3e}{}\n", r.name, r.iterations,
               r.total_seconds,
               r.iterations ? 1e6 * r.total_seconds / static_cast<double>(r.iterations) : 0.0,
               r.loss.back(), r.grad_norm.back(),
               r.converged ? "" : fmt::format("  (stopped at the cap of {})", r.iterations));
    for (size_t i = 0; i < r.iteration.size(); ++i)
      csv.row(r.name, r.iteration[i], r.seconds[i], r.loss[i], r.grad_norm[i]);
  }
  const Run& nt = runs[0];
  const Run& gd = runs[1];
  fmt::print("\n  Newton: |grad| at the start and after each iteration:");
  for (double g : nt.grad_norm) fmt::print(" {:.1e}", g);
  fmt::print("\n");
  if (gd.converged) {
    fmt::print(
        "  Newton reached |grad| <= 1e-10 in {} iterations, gradient descent in {} ({:.0f} "
        "times as many, {:.1f} times the time)\n",
        nt.iterations, gd.iterations,
        static_cast<double>(gd.iterations) / static_cast<double>(nt.iterations),
        gd.total_seconds / nt.total_seconds);
  } else {
    fmt::print(
        "  Newton reached |grad| <= 1e-10 in {} iterations; gradient descent stopped at its "
        "cap of {} iterations with |grad| = {:.2e}\n",
        nt.iterations, gd.iterations, gd.grad_norm.back());
  }
  return runs;
}

void plot_runs(const std::vector<Run>& runs, const std::string& dir) {
  plot::Figure by_iter("logistic regression: gradient norm vs iterations", "iterations + 1",
                       "|grad L|");
  plot::Figure by_time("logistic regression: gradient norm vs time", "seconds", "|grad L|");
  by_iter.log_x = by_iter.log_y = by_time.log_x = by_time.log_y = true;
  for (const Run& r : runs) {
    auto& a = by_iter.add(r.name);
    auto& b = by_time.add(r.name);
    for (size_t i = 0; i < r.iteration.size(); ++i) {
      a.x.push_back(r.iteration[i] + 1), a.y.push_back(r.grad_norm[i]);
      b.x.push_back(r.seconds[i]), b.y.push_back(r.grad_norm[i]);  // 0 s (the start) not drawn
    }
  }
  auto& tol = by_iter.add("1e-10", true, "#9ca3af");
  tol.x = {1, by_iter.series[1].x.back()}, tol.y = {kTolerance, kTolerance};
  by_iter.save(dir + "/newton_iterations.svg");
  by_time.save(dir + "/newton_time.svg");
}

// ---------------------------------------------------------------------------------------------------
// Part 2: the Hessian of the article's small network, by the engine and by hand.

constexpr int64_t n0 = 4, n1 = 5, n2 = 3, batch = 8;

struct Net {
  Tensor W1, b1, W2, b2;  // [n1, n0], [n1], [n2, n1], [n2]
  Tensor x, y;            // [batch, n0] inputs, [batch] class labels
};

// The network of tutorial section 8 (backprop_by_hand's draw_tape): same seed, same draws.
Net article_network() {
  ag::Generator gen(7);
  ag::nn::Linear layer1(n0, n1, true, &gen), layer2(n1, n2, true, &gen);
  layer1.to(ag::float64);
  layer2.to(ag::float64);
  Net net;
  net.W1 = layer1.weight.detach(), net.b1 = layer1.bias.detach();
  net.W2 = layer2.weight.detach(), net.b2 = layer2.bias.detach();
  net.x = ag::randn({batch, n0}, ag::float64, &gen);
  net.y = ag::randint(0, n2, {batch}, &gen);
  return net;
}

// Position of each parameter in the flattened vector theta = (W1, b1, W2, b2), row-major.
constexpr int64_t kW1 = 0, kB1 = kW1 + n1 * n0, kW2 = kB1 + n1, kB2 = kW2 + n2 * n1,
                  kParams = kB2 + n2;
// Layer 1's parameter (j, m): W1[j][m] for m < n0, b1[j] for m == n0 (the weight of a constant 1).
int64_t idx1(int64_t j, int64_t m) { return m < n0 ? kW1 + j * n0 + m : kB1 + j; }
// Layer 2's parameter (k, j): W2[k][j] for j < n1, b2[k] for j == n1.
int64_t idx2(int64_t k, int64_t j) { return j < n1 ? kW2 + k * n1 + j : kB2 + k; }

// The Hessian of L = (1/N) sum_s -log softmax(z2_s)[y_s], derived by hand. Per sample (column
// layout, as in the article), with x_bar = (x, 1) and a_bar = (a, 1) carrying the biases:
//   z1 = W1 x + b1,  a = sigma(z1),  s1 = sigma'(z1) = a (1 - a),  s2 = sigma''(z1) = s1 (1 - 2a)
//   z2 = W2 a + b2,  p = softmax(z2),  delta2 = p - onehot(y),  S = diag(p) - p p^T (= d
//   delta2/dz2) r = W2^T delta2,  M = W2^T S W2,  SW = S W2
// The gradient is dL/dW2[k][j] = delta2_k a_bar_j and dL/dW1[j][m] = r_j s1_j x_bar_m; their
// derivatives (product rule, chain rule through z2 and a) give the three kinds of blocks:
//   d2L / dW2[k][j] dW2[k'][j'] = S_kk' a_bar_j a_bar_j'
//   d2L / dW2[k][j] dW1[j'][m]  = SW_kj' s1_j' x_bar_m a_bar_j  +  [j == j'] delta2_k s1_j x_bar_m
//   d2L / dW1[j][m] dW1[j'][m'] = x_bar_m x_bar_m' (s1_j M_jj' s1_j'  +  [j == j'] r_j s2_j)
// each averaged over the N samples.
std::vector<double> hand_hessian(const Net& net) {
  auto W1 = net.W1.to_vector<double>(), b1 = net.b1.to_vector<double>();
  auto W2 = net.W2.to_vector<double>(), b2 = net.b2.to_vector<double>();
  auto X = net.x.to_vector<double>();
  auto Y = net.y.to_vector<int64_t>();
  std::vector<double> H(kParams * kParams, 0.0);
  auto at = [&](int64_t p, int64_t q) -> double& { return H[p * kParams + q]; };
  for (int64_t s = 0; s < batch; ++s) {
    double xb[n0 + 1], a[n1 + 1], s1[n1], s2[n1], z2[n2], p[n2], delta2[n2];
    for (int64_t m = 0; m < n0; ++m) xb[m] = X[s * n0 + m];
    xb[n0] = 1.0;
    for (int64_t j = 0; j < n1; ++j) {
      double z = b1[j];
      for (int64_t m = 0; m < n0; ++m) z += W1[j * n0 + m] * xb[m];
      a[j] = 1.0 / (1.0 + std::exp(-z));
      s1[j] = a[j] * (1.0 - a[j]);
      s2[j] = s1[j] * (1.0 - 2.0 * a[j]);
    }
    a[n1] = 1.0;
    double zmax = -1e300, total = 0;
    for (int64_t k = 0; k < n2; ++k) {
      z2[k] = b2[k];
      for (int64_t j = 0; j < n1; ++j) z2[k] += W2[k * n1 + j] * a[j];
      zmax = std::max(zmax, z2[k]);
    }
    for (int64_t k = 0; k < n2; ++k) total += (p[k] = std::exp(z2[k] - zmax));
    for (int64_t k = 0; k < n2; ++k) {
      p[k] /= total;
      delta2[k] = p[k] - (k == Y[s] ? 1.0 : 0.0);
    }
    double S[n2][n2], SW[n2][n1], M[n1][n1], r[n1];
    for (int64_t k = 0; k < n2; ++k)
      for (int64_t l = 0; l < n2; ++l) S[k][l] = (k == l ? p[k] : 0.0) - p[k] * p[l];
    for (int64_t k = 0; k < n2; ++k)
      for (int64_t j = 0; j < n1; ++j) {
        SW[k][j] = 0;
        for (int64_t l = 0; l < n2; ++l) SW[k][j] += S[k][l] * W2[l * n1 + j];
      }
    for (int64_t j = 0; j < n1; ++j) {
      r[j] = 0;
      for (int64_t k = 0; k < n2; ++k) r[j] += W2[k * n1 + j] * delta2[k];
      for (int64_t i = 0; i < n1; ++i) {
        M[j][i] = 0;
        for (int64_t k = 0; k < n2; ++k) M[j][i] += W2[k * n1 + j] * SW[k][i];
      }
    }
    const double w = 1.0 / batch;
    // layer 2 with layer 2
    for (int64_t k = 0; k <= n2 - 1; ++k)
      for (int64_t j = 0; j <= n1; ++j)
        for (int64_t k2 = 0; k2 < n2; ++k2)
          for (int64_t j2 = 0; j2 <= n1; ++j2)
            at(idx2(k, j), idx2(k2, j2)) += w * S[k][k2] * a[j] * a[j2];
    // layer 2 with layer 1, and its transpose
    for (int64_t k = 0; k < n2; ++k)
      for (int64_t j = 0; j <= n1; ++j)
        for (int64_t j2 = 0; j2 < n1; ++j2)
          for (int64_t m = 0; m <= n0; ++m) {
            double h =
                SW[k][j2] * s1[j2] * xb[m] * a[j] + (j == j2 ? delta2[k] * s1[j] * xb[m] : 0);
            at(idx2(k, j), idx1(j2, m)) += w * h;
            at(idx1(j2, m), idx2(k, j)) += w * h;
          }
    // layer 1 with layer 1
    for (int64_t j = 0; j < n1; ++j)
      for (int64_t m = 0; m <= n0; ++m)
        for (int64_t j2 = 0; j2 < n1; ++j2)
          for (int64_t m2 = 0; m2 <= n0; ++m2)
            at(idx1(j, m), idx1(j2, m2)) +=
                w * xb[m] * xb[m2] * (s1[j] * M[j][j2] * s1[j2] + (j == j2 ? r[j] * s2[j] : 0));
  }
  return H;
}

double network_hessian() {
  Net net = article_network();
  ag::ScalarFn loss = [&net](const TensorList& p) {
    Tensor a1 = ag::sigmoid(ag::linear(net.x, p[0], p[1]));
    return ag::cross_entropy(ag::linear(a1, p[2], p[3]), net.y);
  };
  const TensorList params{net.W1, net.b1, net.W2, net.b2};
  const char* names[] = {"W1", "b1", "W2", "b2"};
  const int64_t offset[] = {kW1, kB1, kW2, kB2};
  ag::JacobianTable He = ag::hessian(loss, params);  // forward-over-reverse
  std::vector<double> Hh = hand_hessian(net);

  fmt::print(
      "\nHessian of the article's network: 4-5-3, sigmoid hidden layer, softmax + cross-entropy,\n"
      "batch of 8 (the network of the tape in tutorial section 8), with respect to all {} "
      "parameters\n"
      "theta = (W1 [5, 4], b1 [5], W2 [3, 5], b2 [3]); by the engine (ag::hessian, "
      "forward-over-reverse)\nand by the formulas derived by hand (examples/newton.cpp, "
      "hand_hessian)\n",
      kParams);
  fmt::print("  loss {:.15f}\n", loss(params).item());
  fmt::print("  {:<8} {:>14} {:>12} {:>20}\n", "block", "engine shape", "max |H|",
             "max |hand - engine|");
  double worst = 0;
  for (size_t i = 0; i < 4; ++i)
    for (size_t j = 0; j < 4; ++j) {
      std::vector<double> e = He[i][j].contiguous().to_vector<double>();
      const int64_t ni = params[i].numel(), nj = params[j].numel();
      double scale = 0, diff = 0;
      for (int64_t a = 0; a < ni; ++a)
        for (int64_t b = 0; b < nj; ++b) {
          double h = Hh[(offset[i] + a) * kParams + offset[j] + b], g = e[a * nj + b];
          scale = std::max(scale, std::abs(g));
          double d = std::abs(h - g);
          diff = std::isnan(d) ? INFINITY : std::max(diff, d);
        }
      worst = std::max(worst, diff);
      fmt::print("  {:<8} {:>14} {:>12.4e} {:>20.3e}\n", fmt::format("{},{}", names[i], names[j]),
                 to_string(He[i][j].shape()), scale, diff);
    }
  // Two blocks in full, hand-derived next to the engine's.
  auto show = [&](size_t i, size_t j) {
    fmt::print("\n  d2L / d{} d{}   by hand  |  engine\n", names[i], names[j]);
    std::vector<double> e = He[i][j].contiguous().to_vector<double>();
    const int64_t ni = params[i].numel(), nj = params[j].numel();
    for (int64_t a = 0; a < ni; ++a) {
      std::string hand, eng;
      for (int64_t b = 0; b < nj; ++b) {
        hand += fmt::format(" {:>10.6f}", Hh[(offset[i] + a) * kParams + offset[j] + b]);
        eng += fmt::format(" {:>10.6f}", e[a * nj + b]);
      }
      fmt::print("  {}  | {}\n", hand, eng);
    }
  };
  show(3, 3);
  show(1, 3);
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s = parse(argc, argv);
  plot::Csv csv({"method", "iteration", "seconds", "loss", "grad_norm"});
  std::vector<Run> runs = fit_logistic_regression(s, csv);
  plot_runs(runs, s.dir);
  csv.save(s.dir + "/newton.csv");
  fmt::print("  wrote {0}/newton_iterations.svg, {0}/newton_time.svg, {0}/newton.csv\n", s.dir);
  double worst = network_hessian();
  fmt::print("hessian max abs difference hand vs engine: {:.3e}\n", worst);
  return worst <= 1e-10 && runs[0].converged ? 0 : 1;
}
