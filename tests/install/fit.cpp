// The nn half of the install test (tests/install_check.sh): a small MLP fits y = sin(3x) + noise
// with Adam, built against the installed nn library. Exits non-zero unless the loss falls tenfold.
#include <fmt/format.h>

#include "nn/nn.h"

int main() {
  using namespace ag;
  nn::TensorDataset data = nn::sine_regression(64, /*noise=*/0.05, /*seed=*/1);
  const Tensor &x = data.tensors()[0], &y = data.tensors()[1];
  Generator init(2);
  auto model = nn::make_mlp({1, 16, 16, 1}, "tanh", 0.0, &init);
  nn::Adam opt(model->parameters(), {.lr = 0.02});
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    opt.zero_grad();
    Tensor loss = nn::mse_loss((*model)(x), y);
    last = loss.item();
    if (step == 0) first = last;
    loss.backward();
    opt.step();
  }
  bool ok = last < first / 10;
  fmt::print("fit: {} parameters, mse {:.4f} -> {:.4f}: {}\n", model->num_parameters(), first, last,
             ok ? "learned" : "did not learn");
  return ok ? 0 : 1;
}
