// Your own op with a hand-written backward (autograd/function.h), checked against finite
// differences (autograd/gradcheck.h); then the same op with a deliberately wrong backward, and what
// the checks report about it.
//
// The op: swish with a learnable slope, fused into one node instead of three (mul, sigmoid, mul):
//   y = x * s,   s = sigmoid(beta * x)            x [..., C], beta [C] (broadcast over the rows)
//   dy/dx    = s + beta * x * s * (1 - s)          (product rule: d(x)/dx * s + x * ds/dx)
//   dy/dbeta = x^2 * s * (1 - s)
// The backward returns dy/dbeta in the broadcast shape [..., C]; the engine sums it back to [C].
// It is written with ag ops (recomputing s from x and beta), so it can itself be differentiated:
// gradgradcheck checks that too.
//
// The wrong version forgets the second term of the product rule (dy/dx = s), a classic slip.
//
//   custom_op [output folder]     (writes nothing; the folder argument is accepted for
//   scripts/demo)
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "autograd/autograd.h"
#include "autograd/function.h"  // custom ops: the op-authoring layer

using namespace ag;

namespace {

struct Swish : Function<Swish> {
  static constexpr const char* name = "swish";
  static Tensor forward(FunctionContext& ctx, const Tensor& x, const Tensor& beta) {
    ctx.save_for_backward({x, beta});
    return mul(x, sigmoid(mul(beta, x)));
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& grad_outputs) {
    TensorList saved = ctx.saved_tensors();
    const Tensor &x = saved[0], &beta = saved[1], &g = grad_outputs[0];
    Tensor s = sigmoid(mul(beta, x));
    Tensor ds = mul(s, rsub(s, 1.0));  // s (1 - s)
    Tensor dx = mul(g, add(s, mul(mul(beta, x), ds)));
    Tensor dbeta = ctx.needs_input_grad(1) ? mul(g, mul(mul(x, x), ds)) : Tensor();
    return {dx, dbeta};
  }
};

struct SwishWrong : Function<SwishWrong> {
  static constexpr const char* name = "swish_wrong";
  static Tensor forward(FunctionContext& ctx, const Tensor& x, const Tensor& beta) {
    ctx.save_for_backward({x, beta});
    return mul(x, sigmoid(mul(beta, x)));
  }
  static TensorList backward(FunctionContext& ctx, const TensorList& grad_outputs) {
    TensorList saved = ctx.saved_tensors();
    const Tensor &x = saved[0], &beta = saved[1], &g = grad_outputs[0];
    Tensor s = sigmoid(mul(beta, x));
    Tensor dx = mul(g, s);  // WRONG: the x * ds/dx term of the product rule is missing
    Tensor dbeta = mul(g, mul(mul(x, x), mul(s, rsub(s, 1.0))));
    return {dx, dbeta};
  }
};

Tensor leaf64(const Shape& shape, uint64_t seed, double lo = -1.5, double hi = 1.5) {
  Generator g(seed);
  return uniform(shape, lo, hi, float64, &g).requires_grad_();
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (double d : sub(a, b).detach().to_vector<double>()) m = std::max(m, std::abs(d));
  return m;
}

// A small regression network around the op: mean((swish(x W1^T + b1, beta) W2^T + b2 - y)^2).
template <class Op>
Tensor network(const TensorList& p, const Tensor& x, const Tensor& y) {
  Tensor h = Op::apply(linear(x, p[0], p[1]), p[2]);
  Tensor d = sub(linear(h, p[3], p[4]), y);
  return mean(mul(d, d));
}

}  // namespace

int main() {
  bool ok = true;
  fmt::print(
      "A custom op: swish(x, beta) = x * sigmoid(beta x), one node with its own backward\n\n");

  // 1. Values and gradients against the same function composed from built-in ops.
  Tensor x = leaf64({4, 3}, 1), beta = leaf64({3}, 2, 0.5, 2.0);
  Tensor fused = Swish::apply(x, beta);
  Tensor composed = mul(x, sigmoid(mul(beta, x)));
  auto ops = [](const Tensor& t) {  // op nodes on the tape behind t (leaves not counted)
    std::string s;
    for (const Node* n : tape_nodes(t))
      if (n->sequence_nr() > 0) {
        if (!s.empty()) s += ", ";
        s += n->name();
      }
    return s;
  };
  fmt::print("forward: max |fused - composed| = {:.2e}\n", max_abs_diff(fused, composed));
  fmt::print("tape: fused records [{}], composed records [{}]\n", ops(fused), ops(composed));
  TensorList g_fused = grad({sum(fused)}, {x, beta});
  TensorList g_comp = grad({sum(composed)}, {x, beta});
  fmt::print("backward: max |difference| dx {:.2e}, dbeta {:.2e} (dbeta summed back to {})\n\n",
             max_abs_diff(g_fused[0], g_comp[0]), max_abs_diff(g_fused[1], g_comp[1]),
             to_string(g_fused[1].shape()));

  // 2. gradcheck and gradgradcheck, in float64.
  auto op = [](const TensorList& in) { return Swish::apply(in[0], in[1]); };
  GradcheckReport r1 = gradcheck(op, {x, beta});
  GradcheckReport r2 = gradgradcheck(op, {x, beta});
  fmt::print("swish       {}\nswish       {}\n", r1.to_string(), r2.to_string());
  ok = ok && r1 && r2;

  // 3. The wrong backward: gradcheck catches it.
  auto wrong_op = [](const TensorList& in) { return SwishWrong::apply(in[0], in[1]); };
  GradcheckReport r3 = gradcheck(wrong_op, {x, beta});
  fmt::print("swish_wrong {}\n\n", r3.to_string());
  ok = ok && !r3;

  // 4. Inside a network: check_tape checks every node of the tape on the values it saw, and names
  // the first whose backward disagrees with finite differences (op, input shapes, source line).
  Tensor data = leaf64({6, 3}, 3).detach(), target = leaf64({6, 2}, 4).detach();
  TensorList params = {leaf64({4, 3}, 5), leaf64({4}, 6), leaf64({4}, 7, 0.5, 2.0),
                       leaf64({2, 4}, 8), leaf64({2}, 9)};
  auto good_net = [&](const TensorList& p) { return network<Swish>(p, data, target); };
  auto bad_net = [&](const TensorList& p) { return network<SwishWrong>(p, data, target); };
  TapeReport t1 = check_tape(good_net, params);
  fmt::print("network with swish:\n{}\n\n", t1.to_string());
  TapeReport t2 = check_tape(bad_net, params);
  fmt::print("network with swish_wrong:\n{}\n", t2.to_string());
  const TapeNodeReport* first = t2.first_failure();
  ok = ok && t1 && !t2 && first && first->op == "swish_wrong";
  std::puts(ok ? "\nthe correct backward passes every check; the wrong one is caught and named"
               : "\nUNEXPECTED: the checks did not come out as they should");
  return ok ? 0 : 1;
}
