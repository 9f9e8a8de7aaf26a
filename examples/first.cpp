// The README's first program: record an expression, back-propagate, gradcheck it.
#include <fmt/format.h>

#include "autograd/autograd.h"

int main() {
  using namespace ag;
  Tensor x = Tensor({{1.0, 2.0}, {3.0, 4.0}}).requires_grad_();
  Tensor w = Tensor({0.5, -1.0}).requires_grad_();
  Tensor y = tanh(matmul(x, w)).pow(2.0).sum();  // recorded on the tape
  y.backward();                                  // replayed in reverse
  fmt::print("y = {}\ndy/dx = {}\ndy/dw = {}\n", y, x.grad(), w.grad());

  // Check those gradients against central differences, in float64:
  auto f = [](const TensorList& in) { return tanh(matmul(in[0], in[1])).pow(2.0).sum(); };
  auto report = gradcheck(
      f, {x.detach().to(float64).requires_grad_(), w.detach().to(float64).requires_grad_()});
  fmt::print("{}\n", report);  // gradcheck: passed (6 entries compared)
  return report ? 0 : 1;
}
