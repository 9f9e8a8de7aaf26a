// Fits a noisy curve with a small MLP: the whole of supervised learning in a few lines.
//
//   data   x uniform in [-1, 1], y = sin(3 x) + N(0, 0.1^2)   (nn::sine_regression)
//   model  MLP 1-32-32-1 with tanh
//   loss   mean squared error;  optimizer Adam, full batch
//
// Prints the loss as it goes down (at steps 0, 1, 2, 5, 10, 20, 50, ...; the bar is on a log
// scale), then the fitted curve next to the true one at a few points.
//
//   regression [output folder]   also writes <folder>/regression.csv (x, target, prediction)
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "nn/nn.h"

using namespace ag;

namespace {

// 0, 1, 2, 5, 10, 20, 50, 100, ...: the loss falls fastest at first.
bool report_at(int step) {
  if (step < 3) return true;
  while (step % 10 == 0) step /= 10;
  return step == 1 || step == 2 || step == 5;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = 200;
  const int steps = 2000;
  nn::TensorDataset data = nn::sine_regression(n, /*noise=*/0.1, /*seed=*/7);
  const Tensor &x = data.tensors()[0], &y = data.tensors()[1];

  Generator init(3);
  auto model = nn::make_mlp({1, 32, 32, 1}, "tanh", 0.0, &init);
  nn::Adam opt(model->parameters(), {.lr = 0.01});
  fmt::print("fitting y = sin(3x) + noise ({} points) with an MLP 1-32-32-1 ({} parameters)\n", n,
             model->num_parameters());
  fmt::print("noise alone gives an MSE of about {:.4f}\n\n", 0.1 * 0.1);

  double first = 0;
  for (int step = 0; step <= steps; ++step) {
    opt.zero_grad();
    Tensor loss = nn::mse_loss((*model)(x), y);
    double value = loss.item();
    if (step == 0) first = value;
    if (report_at(step)) {
      // One '#' per factor of 10^(1/10) below the first loss.
      auto bars = static_cast<int>(std::lround(std::max(0.0, 10 * std::log10(first / value))));
      fmt::print("step {:>5}  loss {:.5f}  {}\n", step, value, std::string(bars, '#'));
    }
    if (step == steps) break;
    loss.backward();
    opt.step();
  }

  fmt::print("\n{:>7} {:>10} {:>10}\n", "x", "sin(3x)", "model");
  {
    NoGradGuard ng;
    model->eval();
    for (double v = -1.0; v <= 1.0001; v += 0.25) {
      double pred = (*model)(full({1, 1}, v)).item();
      fmt::print("{:>7.2f} {:>10.4f} {:>10.4f}\n", v, std::sin(3 * v), pred);
    }
  }

  if (argc > 1) {
    std::string path = std::string(argv[1]) + "/regression.csv";
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (!f) {
      fmt::print(stderr, "regression: cannot write {}\n", path);
      return 1;
    }
    NoGradGuard ng;
    auto xs = x.to_vector<float>(), ys = y.to_vector<float>();
    auto ps = (*model)(x).to_vector<float>();
    fmt::print(f, "x,target,prediction\n");
    for (size_t i = 0; i < xs.size(); ++i) fmt::print(f, "{},{},{}\n", xs[i], ys[i], ps[i]);
    std::fclose(f);
    fmt::print("\nwrote {}\n", path);
  }
  return 0;
}
