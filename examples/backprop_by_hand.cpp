// Backpropagation by hand, next to autograd.
//
// The article's L-layer feed-forward network, written twice:
//   1. by hand, in plain xtensor, with the delta formulas of backpropagation:
//        forward   z(l) = W(l) a(l-1) + b(l),   a(l) = sigma(z(l)),   a(0) = x
//        output    delta(L) = dLoss/da(L) * sigma'(z(L))        (MSE)
//                  delta(L) = softmax(z(L)) - y                  (softmax + cross-entropy)
//        recursion delta(l) = W(l+1)^T delta(l+1) * sigma'(z(l))
//        gradients dW(l) = delta(l) a(l-1)^T,   db(l) = delta(l)    (averaged over the mini-batch)
//      Samples are the columns here, as in the article: a(l) is [n_l, m] for a batch of m.
//   2. with nn: Linear layers and activation modules in a Sequential, float64, the same weights and
//   the
//      same batch; the gradients come from autograd replaying the tape. nn keeps samples in rows
//      (y = x W^T + b), so its activations are the transposes of the hand-written ones, while the
//      weights W [n_l, n_(l-1)] are literally the same matrices.
//
// It prints, per layer, how far the hand-derived gradients are from autograd's, for both losses and
// three activations; then trains both networks side by side with mini-batch SGD; then draws the
// tape of one training step (tape.dot, tape.mmd). Its last line is the largest difference seen
// anywhere.
//
//   backprop_by_hand [output folder, default demo-output]

// Scalar xtensor (no xsimd) in this file: the matrices are tiny, and GCC 12 reports false
// "uninitialized" warnings inside xsimd's AVX-512 exp and tanh at -O3.
#undef XTENSOR_USE_XSIMD

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xsort.hpp>
#include <xtensor/xview.hpp>

#include "autograd/xtensor.h"
#include "nn/nn.h"
#include "plot.h"

using Matrix = xt::xarray<double>;
namespace nn = ag::nn;

namespace {

// ---------------------------------------------------------------------------------------------------
// Moving numbers from nn's tensors into xtensor arrays (a copy).
Matrix to_xt(const ag::Tensor& t) {
  std::vector<double> v = t.detach().to(ag::float64).contiguous().to_vector<double>();
  std::vector<size_t> shape(t.shape().begin(), t.shape().end());
  return xt::adapt(v, shape);
}

// ---------------------------------------------------------------------------------------------------
// Part 1: the network by hand.

// An activation and its derivative, both elementwise on z.
struct Activation {
  std::string name;
  std::function<Matrix(const Matrix&)> f, df;
};

Activation activation(const std::string& name) {
  if (name == "sigmoid") {
    auto s = [](const Matrix& z) -> Matrix { return 1.0 / (1.0 + xt::exp(-z)); };
    return {name, s, [s](const Matrix& z) -> Matrix {
              Matrix a = s(z);
              return a * (1.0 - a);  // sigma' = sigma (1 - sigma)
            }};
  }
  if (name == "tanh")
    return {name, [](const Matrix& z) -> Matrix { return xt::tanh(z); },
            [](const Matrix& z) -> Matrix {
              Matrix t = xt::tanh(z);
              return 1.0 - t * t;  // tanh' = 1 - tanh^2
            }};
  if (name == "relu")
    return {name, [](const Matrix& z) -> Matrix { return xt::maximum(z, 0.0); },
            [](const Matrix& z) -> Matrix { return xt::where(z > 0.0, 1.0, 0.0); }};
  throw ag::ValueError("unknown activation " + name);
}

// softmax of each column (each sample), shifted by the column max for stability.   [K, m]
// Reductions are evaluated into arrays before they are broadcast: xtensor 0.24 broadcasts a lazy
// keep_dims reducer wrongly inside a larger expression.
Matrix softmax_columns(const Matrix& z) {
  Matrix zmax = xt::amax(z, {0}, xt::keep_dims);  // [1, m]
  Matrix e = xt::exp(z - zmax);
  Matrix total = xt::sum(e, {0}, xt::keep_dims);  // [1, m]
  return e / total;
}

enum class Loss { mse, cross_entropy };
const char* loss_name(Loss l) { return l == Loss::mse ? "MSE" : "softmax + cross-entropy"; }

// The article's network. Layer l = 1..L has W[l] [n_l, n_(l-1)] and b[l] [n_l, 1] (index 0 unused).
// With MSE every layer applies sigma, the output layer too; with cross-entropy the output layer
// applies softmax instead.
struct HandNet {
  std::vector<Matrix> W, b;
  Activation sigma;
  Loss loss;
  // Forward caches (what backward needs): z[l] and a[l], a[0] = x.
  std::vector<Matrix> z, a;

  size_t L() const { return W.size() - 1; }

  // x [n_0, m] -> a(L) [n_L, m]
  const Matrix& forward(const Matrix& x) {
    z.assign(L() + 1, Matrix());
    a.assign(L() + 1, Matrix());
    a[0] = x;
    for (size_t l = 1; l <= L(); ++l) {
      z[l] = xt::linalg::dot(W[l], a[l - 1]) + b[l];  // b [n_l, 1] broadcast over the m columns
      a[l] = (l == L() && loss == Loss::cross_entropy) ? softmax_columns(z[l]) : sigma.f(z[l]);
    }
    return a[L()];
  }

  // The mini-batch loss of the last forward. y: targets [n_L, m] (one-hot for cross-entropy).
  //   MSE: (1/m) sum_i (1/K) ||a_i - y_i||^2    (the mean over all m K entries, as nn::mse_loss)
  //   CE:  (1/m) sum_i -sum_k y_ik log a_ik
  double loss_value(const Matrix& y) const {
    const Matrix& out = a[L()];
    if (loss == Loss::mse) return xt::mean(xt::square(out - y))();
    double m = static_cast<double>(out.shape()[1]);
    return -xt::sum(y * xt::log(out))() / m;
  }

  // delta(L) per sample (column), before averaging over the batch.
  Matrix output_error(const Matrix& y) const {
    const Matrix& out = a[L()];
    if (loss == Loss::cross_entropy) return out - y;  // softmax and cross-entropy together
    double K = static_cast<double>(out.shape()[0]);
    Matrix dloss_da = 2.0 * (out - y) / K;  // gradient of (1/K) ||a - y||^2
    return dloss_da * sigma.df(z[L()]);
  }

  // Backpropagation: returns dW[l], db[l] of the batch-mean loss.
  void backward(const Matrix& y, std::vector<Matrix>& dW, std::vector<Matrix>& db) const {
    double m = static_cast<double>(y.shape()[1]);
    dW.assign(L() + 1, Matrix());
    db.assign(L() + 1, Matrix());
    Matrix delta = output_error(y);  // [n_L, m]
    for (size_t l = L(); l >= 1; --l) {
      dW[l] = xt::linalg::dot(delta, xt::transpose(a[l - 1])) / m;  // delta a^T  [n_l, n_(l-1)]
      Matrix delta_sum = xt::sum(delta, {1}, xt::keep_dims);        // [n_l, 1]
      db[l] = delta_sum / m;                                        // delta      [n_l, 1]
      if (l > 1)  // delta(l-1) = W(l)^T delta(l) * sigma'(z(l-1))
        delta = xt::linalg::dot(xt::transpose(W[l]), delta) * sigma.df(z[l - 1]);
    }
  }

  void sgd_step(const std::vector<Matrix>& dW, const std::vector<Matrix>& db, double lr) {
    for (size_t l = 1; l <= L(); ++l) {
      W[l] -= lr * dW[l];
      b[l] -= lr * db[l];
    }
  }
};

// ---------------------------------------------------------------------------------------------------
// Part 2: the same network from nn, and a copy of its weights for the hand-written one.
struct Twins {
  std::shared_ptr<nn::Sequential> model;
  std::vector<std::shared_ptr<nn::Linear>> linears;  // layer l is linears[l - 1]
  HandNet hand;
};

Twins make_twins(const std::vector<int64_t>& sizes, const std::string& act, Loss loss,
                 uint64_t seed) {
  ag::Generator gen(seed);
  Twins t;
  t.model = std::make_shared<nn::Sequential>();
  for (size_t l = 1; l < sizes.size(); ++l) {
    auto lin = std::make_shared<nn::Linear>(sizes[l - 1], sizes[l], true, &gen);
    t.linears.push_back(lin);
    t.model->push_back(lin);
    bool last = l + 1 == sizes.size();
    if (!last || loss == Loss::mse) t.model->push_back(nn::make_activation(act));
  }
  t.model->to(ag::float64);
  t.hand.sigma = activation(act);
  t.hand.loss = loss;
  t.hand.W.assign(1, Matrix());
  t.hand.b.assign(1, Matrix());
  for (auto& lin : t.linears) {
    t.hand.W.push_back(to_xt(lin->weight));
    Matrix b = to_xt(lin->bias);
    b.reshape({b.size(), size_t{1}});
    t.hand.b.push_back(b);
  }
  return t;
}

// The data of one problem: inputs x [n0, N] (columns), hand targets y [K, N], nn targets.
struct Problem {
  Matrix x, y;        // article layout
  ag::Tensor x_rows;  // [N, n0]
  ag::Tensor target;  // MSE: [N, K] float64; CE: [N] int64 labels
};

// Classification: K Gaussian blobs in n0 dimensions. Regression: targets sigmoid(x A) in (0, 1).
Problem make_problem(Loss loss, int64_t n0, int64_t K, int64_t N, uint64_t seed) {
  ag::Generator gen(seed);
  Problem p;
  if (loss == Loss::cross_entropy) {
    ag::Tensor centers = ag::mul(ag::randn({K, n0}, ag::float64, &gen), 1.5);
    ag::Tensor labels = ag::randint(0, K, {N}, &gen);
    p.x_rows = ag::add(ag::index_select(centers, 0, labels), ag::randn({N, n0}, ag::float64, &gen));
    p.target = labels;
    p.y = xt::zeros<double>({static_cast<size_t>(K), static_cast<size_t>(N)});
    auto lab = labels.to_vector<int64_t>();
    for (int64_t i = 0; i < N; ++i) p.y(lab[i], i) = 1.0;  // one-hot columns
  } else {
    p.x_rows = ag::randn({N, n0}, ag::float64, &gen);
    ag::Tensor A = ag::randn({n0, K}, ag::float64, &gen);
    p.target = ag::sigmoid(ag::matmul(p.x_rows, A));
    p.y = xt::transpose(to_xt(p.target));
  }
  p.x = xt::transpose(to_xt(p.x_rows));
  return p;
}

// Columns [begin, end) in the article layout / rows in nn's, for the samples `idx`.
Matrix columns(const Matrix& a, const std::vector<int64_t>& idx) {
  Matrix r = xt::zeros<double>({a.shape()[0], idx.size()});
  for (size_t j = 0; j < idx.size(); ++j)
    xt::view(r, xt::all(), j) = xt::view(a, xt::all(), idx[j]);
  return r;
}

ag::Tensor nn_loss(Loss loss, const ag::Tensor& out, const ag::Tensor& target) {
  return loss == Loss::mse ? nn::mse_loss(out, target) : nn::cross_entropy(out, target);
}

// The larger of two differences, where NaN counts as infinitely large (never as a small
// difference).
double worse(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::infinity();
  return std::max(a, b);
}

double max_abs(const Matrix& a) {
  double m = 0;
  for (double v : a) m = worse(m, std::abs(v));
  return m;
}

// ---------------------------------------------------------------------------------------------------
// One comparison: both networks on the same batch; prints the per-layer table. Returns the largest
// absolute difference.
double compare(Loss loss, const std::string& act, const std::vector<int64_t>& sizes, int64_t m,
               uint64_t seed) {
  Twins t = make_twins(sizes, act, loss, seed);
  Problem p = make_problem(loss, sizes.front(), sizes.back(), m, seed + 1);

  // By hand.
  t.hand.forward(p.x);
  double hand_loss = t.hand.loss_value(p.y);
  std::vector<Matrix> dW, db;
  t.hand.backward(p.y, dW, db);

  // By autograd.
  ag::Tensor out = t.model->forward(p.x_rows);
  ag::Tensor L = nn_loss(loss, out, p.target);
  L.backward();

  std::string sz;
  for (size_t i = 0; i < sizes.size(); ++i) sz += fmt::format("{}{}", i ? "-" : "", sizes[i]);
  fmt::print("\n{}, hidden activation {}, layers {}, batch of {}\n", loss_name(loss), act, sz, m);
  fmt::print("  loss: by hand {:.15f}   autograd {:.15f}\n", hand_loss, L.item());
  fmt::print("  {:>5}  {:>5}  {:>8}  {:>12}  {:>16}  {:>12}\n", "layer", "param", "shape",
             "max |grad|", "max |hand-auto|", "relative");
  double worst = worse(0, std::abs(hand_loss - L.item()));
  for (size_t l = 1; l <= t.hand.L(); ++l) {
    const auto& lin = t.linears[l - 1];
    Matrix auto_b = to_xt(lin->bias.grad());
    auto_b.reshape({auto_b.size(), size_t{1}});
    std::pair<const char*, std::pair<Matrix, Matrix>> rows[] = {
        {"W", {dW[l], to_xt(lin->weight.grad())}}, {"b", {db[l], auto_b}}};
    for (auto& [name, pair] : rows) {
      const Matrix& h = pair.first;
      const Matrix& a = pair.second;
      double diff = max_abs(h - a), scale = max_abs(a);
      worst = worse(worst, diff);
      std::string shape = fmt::format("[{}, {}]", h.shape()[0], h.shape()[1]);
      fmt::print("  {:>5}  {:>5}  {:>8}  {:>12.4e}  {:>16.3e}  {:>12.3e}\n", l, name, shape, scale,
                 diff, scale > 0 ? diff / scale : 0.0);
    }
  }
  return worst;
}

// Trains both networks with the same mini-batches and prints their losses. Returns the largest
// difference of losses and, at the end, of weights.
double train_side_by_side(Loss loss, const std::string& act, const std::vector<int64_t>& sizes,
                          int64_t n, int64_t m, int epochs, double lr, uint64_t seed,
                          plot::Figure& fig) {
  Twins t = make_twins(sizes, act, loss, seed);
  Problem p = make_problem(loss, sizes.front(), sizes.back(), n, seed + 1);
  nn::SGD opt(t.model->parameters(), {.lr = lr});
  ag::Generator shuffle(seed + 2);
  fmt::print("\nTraining both: {}, hidden {}, {} samples, mini-batches of {}, lr {}\n",
             loss_name(loss), act, n, m, lr);
  fmt::print("  {:>5}  {:>20}  {:>20}  {:>10}\n", "step", "loss by hand", "loss by autograd",
             "|diff|");
  // One colour per run: the hand-written curve solid, autograd's dashed on top of it.
  const char* tag = loss == Loss::mse ? "MSE" : "CE";
  std::string colour = loss == Loss::mse ? "#059669" : "#2563eb";
  auto& s_hand = fig.add(fmt::format("{} by hand", tag), false, colour);
  auto& s_auto = fig.add(fmt::format("{} autograd", tag), true, "#dc2626");
  double worst = 0;
  int step = 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    // The article's step 3: a random mini-batch of m samples (here: a reshuffle per epoch, cut in
    // m).
    auto order = ag::randperm(n, &shuffle).to_vector<int64_t>();
    for (int64_t at = 0; at + m <= n; at += m, ++step) {
      std::vector<int64_t> idx(order.begin() + at, order.begin() + at + m);
      ag::Tensor rows = ag::Tensor::from_vector(idx);
      // By hand: forward, loss, backward, update.
      t.hand.forward(columns(p.x, idx));
      double hand_loss = t.hand.loss_value(columns(p.y, idx));
      std::vector<Matrix> dW, db;
      t.hand.backward(columns(p.y, idx), dW, db);
      t.hand.sgd_step(dW, db, lr);
      // By autograd: the same four steps.
      opt.zero_grad();
      ag::Tensor L = nn_loss(loss, t.model->forward(ag::index_select(p.x_rows, 0, rows)),
                             ag::index_select(p.target, 0, rows));
      L.backward();
      opt.step();
      double diff = std::abs(hand_loss - L.item());
      worst = worse(worst, diff);
      s_hand.x.push_back(step), s_hand.y.push_back(hand_loss);
      s_auto.x.push_back(step), s_auto.y.push_back(L.item());
      int steps_total = epochs * static_cast<int>(n / m);
      if (step < 3 || step % 10 == 0 || step == steps_total - 1)
        fmt::print("  {:>5}  {:>20.15f}  {:>20.15f}  {:>10.2e}\n", step, hand_loss, L.item(), diff);
    }
  }
  double wdiff = 0;
  for (size_t l = 1; l <= t.hand.L(); ++l) {
    wdiff = worse(wdiff, max_abs(t.hand.W[l] - to_xt(t.linears[l - 1]->weight)));
    Matrix b = to_xt(t.linears[l - 1]->bias);
    b.reshape({b.size(), size_t{1}});
    wdiff = worse(wdiff, max_abs(t.hand.b[l] - b));
  }
  fmt::print("  after {} steps the weights differ by at most {:.3e}\n", step, wdiff);
  return worse(worst, wdiff);
}

// The tape of one training step of a small network, drawn with names from the article. Writes
// tape.dot and tape.mmd and returns the Mermaid text.
std::string draw_tape(const std::string& dir) {
  ag::Generator gen(7);
  nn::Linear layer1(4, 5, true, &gen), layer2(5, 3, true, &gen);
  layer1.to(ag::float64);
  layer2.to(ag::float64);
  ag::Tensor x = ag::randn({8, 4}, ag::float64, &gen);
  ag::Tensor y = ag::randint(0, 3, {8}, &gen);
  ag::Tensor z1 = layer1(x);
  ag::Tensor a1 = ag::sigmoid(z1);
  ag::Tensor z2 = layer2(a1);
  ag::Tensor L = nn::cross_entropy(z2, y);
  ag::set_grad_norm_tracing(true);
  L.backward();
  ag::set_grad_norm_tracing(false);
  ag::GraphExportOptions o;
  o.names = ag::TensorNames{{"W1", layer1.weight},
                            {"b1", layer1.bias},
                            {"W2", layer2.weight},
                            {"b2", layer2.bias},
                            {"z1", z1},
                            {"a1", a1},
                            {"z2", z2},
                            {"L", L}};
  o.title = "one step of a 4-5-3 network, batch of 8: forward ops, shapes, gradient norms";
  plot::write_text(dir + "/tape.dot", ag::to_dot(L, o));
  std::string mermaid = ag::to_mermaid(L, o);
  plot::write_text(dir + "/tape.mmd", mermaid);
  return mermaid;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "demo-output";
  fmt::print("Backpropagation by hand (xtensor) against autograd (nn, float64)\n");
  fmt::print(
      "Per layer: the largest gradient entry, the largest absolute difference between the\n"
      "hand-derived and the automatic gradient, and that difference relative to the first.\n");

  // Drawn first, so that its sequence numbers are small (printed at the end).
  std::string tape = draw_tape(dir);

  const std::vector<int64_t> sizes{4, 8, 6, 3};
  double worst = 0;
  uint64_t seed = 100;
  for (Loss loss : {Loss::mse, Loss::cross_entropy})
    for (const char* act : {"sigmoid", "tanh", "relu"})
      worst = worse(worst, compare(loss, act, sizes, 16, seed++));

  plot::Figure fig{"hand-written backprop and autograd, trained side by side", "SGD step",
                   "mini-batch loss"};
  fig.log_y = true;
  worst = worse(worst, train_side_by_side(Loss::cross_entropy, "tanh", {4, 16, 16, 3}, 240, 24, 4,
                                          0.5, 200, fig));
  worst = worse(
      worst, train_side_by_side(Loss::mse, "sigmoid", {4, 16, 16, 3}, 240, 24, 4, 2.0, 300, fig));
  fig.save(dir + "/side_by_side.svg");
  fmt::print("\nThe tape of one step (4-5-3 network, sigmoid, cross-entropy, batch of 8):\n{}",
             tape);
  fmt::print("\nwrote {0}/side_by_side.svg, {0}/tape.dot, {0}/tape.mmd\n", dir);
  fmt::print("max abs difference hand vs autograd: {:.3e}\n", worst);
  return worst < 1e-10 ? 0 : 1;
}
