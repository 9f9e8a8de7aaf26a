// Forward mode (autograd/forward.h): dual tensors; every differentiable op's JVP checked in float64
// against central differences and against reverse mode (gradcheck_forward), on 0-d, strided and
// broadcast inputs; views, in-place ops, custom ops; forward over reverse and reverse over forward.
#include <functional>
#include <string>
#include <vector>

#include "support.h"

namespace {

using ag::Shape;
using ag::Tensor;
using ag::TensorList;
using test::leaf;
using Fn = std::function<Tensor(const TensorList&)>;

// One op applied to some inputs: a row of the table below.
struct Case {
  std::string name;
  Fn fn;
  TensorList inputs;
};

// A leaf whose values lie in [lo, hi) with a magnitude of at least `gap` (away from kinks at 0).
Tensor away_from_zero(const Shape& s, double gap, double hi, uint64_t seed) {
  Tensor x = leaf(s, gap, hi, seed).detach();
  Tensor sign =
      ag::where(ag::lt(leaf(s, -1, 1, seed + 100).detach(), ag::scalar_tensor(0.0, ag::float64)),
                ag::scalar_tensor(-1.0, ag::float64), ag::scalar_tensor(1.0, ag::float64));
  return ag::mul(x, sign).requires_grad_();
}

// Unary elementwise ops, each on a 0-d input, a strided one (a transpose) and a broadcast one (an
// expand: stride 0).
void add_unary(std::vector<Case>& cases, const std::string& name, std::function<Tensor(Tensor)> f,
               double lo = -1, double hi = 1, bool kink_at_zero = false) {
  auto make = [&](const Shape& s, uint64_t seed) {
    return kink_at_zero ? away_from_zero(s, 0.1, hi, seed) : leaf(s, lo, hi, seed);
  };
  cases.push_back({name + " 0-d", [f](const TensorList& x) { return f(x[0]); }, {make({}, 1)}});
  cases.push_back(
      {name + " strided", [f](const TensorList& x) { return f(x[0].t()); }, {make({3, 2}, 2)}});
  cases.push_back({name + " broadcast",
                   [f](const TensorList& x) {
                     return f(x[0].expand({2, 3}));
                   },
                   {make({3}, 3)}});
}

// Binary ops on 0-d inputs, a strided one against a contiguous one, and broadcast shapes.
void add_binary(std::vector<Case>& cases, const std::string& name,
                std::function<Tensor(Tensor, Tensor)> f, double lo_a = -1, double hi_a = 1,
                double lo_b = -1, double hi_b = 1) {
  cases.push_back({name + " 0-d",
                   [f](const TensorList& x) { return f(x[0], x[1]); },
                   {leaf({}, lo_a, hi_a, 4), leaf({}, lo_b, hi_b, 5)}});
  cases.push_back({name + " strided",
                   [f](const TensorList& x) { return f(x[0].t(), x[1]); },
                   {leaf({3, 2}, lo_a, hi_a, 6), leaf({2, 3}, lo_b, hi_b, 7)}});
  cases.push_back({name + " broadcast",
                   [f](const TensorList& x) { return f(x[0], x[1]); },
                   {leaf({3, 1}, lo_a, hi_a, 8), leaf({4}, lo_b, hi_b, 9)}});
  cases.push_back({name + " broadcast 0-d",
                   [f](const TensorList& x) { return f(x[0], x[1]); },
                   {leaf({}, lo_a, hi_a, 10), leaf({2, 3}, lo_b, hi_b, 11)}});
}

// Ops on one input given as written and as a strided view of a leaf (`strided` rearranges the
// leaf into the op's input).
void add_shaped(std::vector<Case>& cases, const std::string& name, std::function<Tensor(Tensor)> f,
                const Shape& shape, double lo = -1, double hi = 1) {
  cases.push_back({name, [f](const TensorList& x) { return f(x[0]); }, {leaf(shape, lo, hi, 12)}});
  if (shape.size() >= 2) {
    Shape flipped = shape;
    std::swap(flipped[shape.size() - 1], flipped[shape.size() - 2]);
    cases.push_back({name + " strided",
                     [f](const TensorList& x) { return f(ag::transpose(x[0], -1, -2)); },
                     {leaf(flipped, lo, hi, 13)}});
  }
}

Tensor idx(std::vector<int64_t> v, const Shape& s) { return Tensor::from_vector(v, s); }
Tensor idx(std::vector<int64_t> v) { return Tensor::from_vector(v); }

std::vector<Case> op_table() {
  std::vector<Case> c;
  // ---- unary ----
  add_unary(c, "neg", [](Tensor x) { return ag::neg(x); });
  add_unary(c, "exp", [](Tensor x) { return ag::exp(x); });
  add_unary(
      c, "log", [](Tensor x) { return ag::log(x); }, 0.5, 2);
  add_unary(
      c, "log1p", [](Tensor x) { return ag::log1p(x); }, -0.5, 1);
  add_unary(c, "expm1", [](Tensor x) { return ag::expm1(x); });
  add_unary(
      c, "sqrt", [](Tensor x) { return ag::sqrt(x); }, 0.5, 2);
  add_unary(
      c, "rsqrt", [](Tensor x) { return ag::rsqrt(x); }, 0.5, 2);
  add_unary(
      c, "abs", [](Tensor x) { return ag::abs(x); }, -1, 1, true);
  add_unary(
      c, "sign", [](Tensor x) { return ag::sign(x); }, -1, 1, true);
  add_unary(c, "square", [](Tensor x) { return ag::square(x); });
  add_unary(c, "sin", [](Tensor x) { return ag::sin(x); });
  add_unary(c, "cos", [](Tensor x) { return ag::cos(x); });
  add_unary(c, "erf", [](Tensor x) { return ag::erf(x); });
  add_unary(c, "tanh", [](Tensor x) { return ag::tanh(x); });
  add_unary(c, "sigmoid", [](Tensor x) { return ag::sigmoid(x); });
  add_unary(
      c, "clamp", [](Tensor x) { return ag::clamp(x, -0.5, 0.5); }, -0.45, 0.45);
  add_unary(
      c, "relu", [](Tensor x) { return ag::relu(x); }, -1, 1, true);
  add_unary(
      c, "leaky_relu", [](Tensor x) { return ag::leaky_relu(x, 0.1); }, -1, 1, true);
  add_unary(
      c, "elu", [](Tensor x) { return ag::elu(x, 0.7); }, -1, 1, true);
  add_unary(c, "gelu", [](Tensor x) { return ag::gelu(x); });
  add_unary(c, "gelu tanh", [](Tensor x) { return ag::gelu(x, "tanh"); });
  add_unary(c, "silu", [](Tensor x) { return ag::silu(x); });
  add_unary(
      c, "softplus", [](Tensor x) { return ag::softplus(x, 2.0, 1.5); }, -1, 1);
  add_unary(c, "add scalar", [](Tensor x) { return x + 2.0; });
  add_unary(c, "mul scalar", [](Tensor x) { return x * 3.0; });
  add_unary(c, "rsub", [](Tensor x) { return 2.0 - x; });
  add_unary(
      c, "rdiv", [](Tensor x) { return 2.0 / x; }, 0.5, 2);
  add_unary(
      c, "pow scalar", [](Tensor x) { return ag::pow(x, 3.5); }, 0.5, 2);
  add_unary(c, "pow 2", [](Tensor x) { return ag::pow(x, 2.0); });
  add_unary(c, "scalar pow", [](Tensor x) { return ag::pow(1.7, x); });
  add_unary(c, "clone", [](Tensor x) { return x.clone(); });
  add_unary(c, "contiguous", [](Tensor x) { return x.contiguous(); });
  add_unary(c, "to", [](Tensor x) { return x.to(ag::float64); });
  add_unary(c, "dropout", [](Tensor x) {
    ag::Generator g(7);
    return ag::dropout(x, 0.4, true, &g);
  });
  // ---- binary ----
  add_binary(c, "add", [](Tensor a, Tensor b) { return ag::add(a, b, 0.5); });
  add_binary(c, "sub", [](Tensor a, Tensor b) { return a - b; });
  add_binary(c, "mul", [](Tensor a, Tensor b) { return a * b; });
  add_binary(
      c, "div", [](Tensor a, Tensor b) { return a / b; }, -1, 1, 0.5, 2);
  add_binary(
      c, "pow", [](Tensor a, Tensor b) { return ag::pow(a, b); }, 0.5, 2);
  add_binary(c, "minimum", [](Tensor a, Tensor b) { return ag::minimum(a, b); });
  add_binary(c, "maximum", [](Tensor a, Tensor b) { return ag::maximum(a, b); });
  add_binary(c, "where", [](Tensor a, Tensor b) { return ag::where(ag::gt(a, b), a, b * 2.0); });
  c.push_back({"gelu_backward",
               [](const TensorList& x) { return ag::gelu_backward(x[0].t(), x[1], "tanh"); },
               {leaf({3, 2}, -1, 1, 12), leaf({2, 3}, -1, 1, 13)}});
  c.push_back({"relu_backward",
               [](const TensorList& x) { return ag::relu_backward(x[0], ag::relu(x[1])); },
               {leaf({2, 3}, -1, 1, 14), away_from_zero({2, 3}, 0.1, 1, 15)}});
  c.push_back({"masked_fill",
               [](const TensorList& x) {
                 return ag::masked_fill(
                     x[0], ag::gt(x[0].detach(), ag::scalar_tensor(0.0, ag::float64)), 3.0);
               },
               {leaf({2, 3}, -1, 1, 16)}});
  // ---- reductions ----
  add_shaped(c, "sum", [](Tensor x) { return ag::sum(x); }, {2, 3});
  add_shaped(c, "sum axis keepdim", [](Tensor x) { return ag::sum(x, {1}, true); }, {2, 3});
  c.push_back(
      {"sum 0-d", [](const TensorList& x) { return ag::sum(x[0]); }, {leaf({}, -1, 1, 17)}});
  add_shaped(c, "mean", [](Tensor x) { return ag::mean(x, {0}); }, {2, 3});
  add_shaped(c, "var", [](Tensor x) { return ag::var(x, {1}); }, {2, 3});
  add_shaped(c, "std", [](Tensor x) { return ag::std(x, {0}, 0, true); }, {3, 2});
  add_shaped(c, "amax", [](Tensor x) { return ag::amax(x, {1}); }, {2, 3});
  add_shaped(c, "amin keepdim", [](Tensor x) { return ag::amin(x, {0}, true); }, {2, 3});
  add_shaped(c, "max all", [](Tensor x) { return ag::max(x); }, {2, 3});
  add_shaped(c, "min all", [](Tensor x) { return ag::min(x); }, {2, 3});
  add_shaped(c, "max axis", [](Tensor x) { return ag::max(x, 1).first; }, {2, 3});
  add_shaped(c, "min axis keepdim", [](Tensor x) { return ag::min(x, 0, true).first; }, {2, 3});
  c.push_back({"max 0-d",
               [](const TensorList& x) { return ag::max(x[0], 0).first; },
               {leaf({}, -1, 1, 18)}});
  add_shaped(c, "logsumexp", [](Tensor x) { return ag::logsumexp(x, {1}); }, {2, 3});
  add_shaped(c, "norm 1", [](Tensor x) { return ag::norm(x, 1.0, {1}); }, {2, 3});
  add_shaped(c, "norm 2", [](Tensor x) { return ag::norm(x); }, {2, 3});
  add_shaped(
      c, "norm 3", [](Tensor x) { return ag::norm(x, 3.0, {0}, true); }, {2, 3}, 0.2, 1);
  add_shaped(c, "norm inf", [](Tensor x) { return ag::norm(x, INFINITY, {1}); }, {2, 3});
  add_shaped(c, "softmax", [](Tensor x) { return ag::softmax(x, 1); }, {2, 3});
  add_shaped(c, "softmax axis 0", [](Tensor x) { return ag::softmax(x, 0); }, {2, 3});
  add_shaped(c, "log_softmax", [](Tensor x) { return ag::log_softmax(x, -1); }, {2, 3});
  // ---- shape ----
  add_shaped(c, "reshape", [](Tensor x) { return ag::reshape(x, {3, 2}); }, {2, 3});
  add_shaped(c, "view", [](Tensor x) { return ag::view(x.contiguous(), {6}); }, {2, 3});
  add_shaped(c, "flatten", [](Tensor x) { return ag::flatten(x); }, {2, 3});
  add_shaped(c, "permute", [](Tensor x) { return ag::permute(x, {1, 0}); }, {2, 3});
  add_shaped(c, "unsqueeze", [](Tensor x) { return ag::unsqueeze(x, 1); }, {2, 3});
  add_shaped(c, "squeeze", [](Tensor x) { return ag::squeeze(ag::unsqueeze(x, 0)); }, {2, 3});
  add_shaped(c, "expand",
             [](Tensor x) {
               return ag::expand(ag::unsqueeze(x, 0), {2, 2, 3});
             },
             {2, 3});
  add_shaped(c, "slice", [](Tensor x) { return ag::slice(x, 1, 0, 3, 2); }, {2, 3});
  add_shaped(c, "select", [](Tensor x) { return ag::select(x, 0, 1); }, {2, 3});
  add_shaped(c, "tril", [](Tensor x) { return ag::tril(x); }, {3, 3});
  add_shaped(c, "triu", [](Tensor x) { return ag::triu(x, 1); }, {3, 3});
  add_shaped(c, "split",
             [](Tensor x) {
               std::vector<Tensor> p = ag::split(x, 2, 1);
               return p[0].sum() * 2.0 + p[1] * 3.0;
             },
             {2, 3});
  add_shaped(c, "chunk", [](Tensor x) { return ag::chunk(x, 2, 0)[1] * 2.0; }, {4, 3});
  add_shaped(c, "slice_backward",
             [](Tensor x) {
               return ag::slice_backward(x, {5, 3}, 0, 1, 2);
             },
             {2, 3});
  add_shaped(c, "pad constant",
             [](Tensor x) {
               return ag::pad(x, {1, 2}, "constant", 0.5);
             },
             {2, 3});
  add_shaped(c, "pad reflect", [](Tensor x) { return ag::pad(x, {1, 1}, "reflect"); }, {2, 3});
  c.push_back({"cat",
               [](const TensorList& x) {
                 return ag::cat({x[0], x[1].t(), x[0] * 2.0}, 0);
               },
               {leaf({2, 3}, -1, 1, 19), leaf({3, 1}, -1, 1, 20)}});
  c.push_back({"stack",
               [](const TensorList& x) {
                 return ag::stack({x[0], x[1]}, 1);
               },
               {leaf({2, 3}, -1, 1, 21), leaf({2, 3}, -1, 1, 22)}});
  c.push_back({"stack 0-d",
               [](const TensorList& x) {
                 return ag::stack({x[0], x[1]});
               },
               {leaf({}, -1, 1, 23), leaf({}, -1, 1, 24)}});
  // ---- index ----
  add_shaped(c, "index_select",
             [](Tensor x) {
               return ag::index_select(x, 1, idx({2, 0, 2}));
             },
             {2, 3});
  add_shaped(c, "gather",
             [](Tensor x) {
               return ag::gather(x, 1, idx({0, 2, 1, 1}, {2, 2}));
             },
             {2, 3});
  add_shaped(c, "embedding",
             [](Tensor w) {
               return ag::embedding(w, idx({1, 0, 1}, {3}));
             },
             {2, 3});
  c.push_back({"index_add",
               [](const TensorList& x) {
                 return ag::index_add(x[0], 0, idx({1, 1}), x[1].t());
               },
               {leaf({3, 2}, -1, 1, 25), leaf({2, 2}, -1, 1, 26)}});
  c.push_back({"scatter_add",
               [](const TensorList& x) {
                 return ag::scatter_add(x[0], 0, idx({2, 0, 2}, {1, 3}), x[1]);
               },
               {leaf({3, 3}, -1, 1, 27), leaf({1, 3}, -1, 1, 28)}});
  // ---- linear algebra ----
  c.push_back({"matmul",
               [](const TensorList& x) { return ag::matmul(x[0], x[1]); },
               {leaf({2, 3}, -1, 1, 29), leaf({3, 2}, -1, 1, 30)}});
  c.push_back({"matmul strided",
               [](const TensorList& x) { return ag::matmul(x[0].t(), x[1].t()); },
               {leaf({3, 2}, -1, 1, 31), leaf({2, 3}, -1, 1, 32)}});
  c.push_back({"matmul batched broadcast",
               [](const TensorList& x) { return ag::matmul(x[0], x[1]); },
               {leaf({2, 2, 3}, -1, 1, 33), leaf({3, 2}, -1, 1, 34)}});
  c.push_back({"matmul vector",
               [](const TensorList& x) { return ag::matmul(x[0], x[1]); },
               {leaf({3}, -1, 1, 35), leaf({3, 2}, -1, 1, 36)}});
  c.push_back({"dot",
               [](const TensorList& x) { return ag::matmul(x[0], x[1]); },
               {leaf({3}, -1, 1, 37), leaf({3}, -1, 1, 38)}});
  c.push_back({"outer",
               [](const TensorList& x) { return ag::outer(x[0], x[1]); },
               {leaf({3}, -1, 1, 39), leaf({2}, -1, 1, 40)}});
  c.push_back({"linear",
               [](const TensorList& x) { return ag::linear(x[0], x[1], x[2]); },
               {leaf({2, 3}, -1, 1, 41), leaf({2, 3}, -1, 1, 42), leaf({2}, -1, 1, 43)}});
  c.push_back({"linear strided no bias",
               [](const TensorList& x) { return ag::linear(x[0].t(), x[1]); },
               {leaf({3, 2}, -1, 1, 44), leaf({4, 3}, -1, 1, 45)}});
  c.push_back({"linear_relu",
               [](const TensorList& x) { return ag::linear_relu(x[0], x[1], x[2]); },
               {leaf({3, 3}, -1, 1, 141), leaf({4, 3}, -1, 1, 142), leaf({4}, -1, 1, 143)}});
  // ---- normalisation ----
  c.push_back({"layer_norm",
               [](const TensorList& x) { return ag::layer_norm(x[0], {3}, x[1], x[2]); },
               {leaf({2, 3}, -1, 1, 46), leaf({3}, 0.5, 1.5, 47), leaf({3}, -1, 1, 48)}});
  c.push_back({"layer_norm strided",
               [](const TensorList& x) { return ag::layer_norm(x[0].t(), {2}); },
               {leaf({2, 3}, -1, 1, 49)}});
  c.push_back({"batch_norm training",
               [](const TensorList& x) {
                 return ag::batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true);
               },
               {leaf({3, 2, 2}, -1, 1, 50), leaf({2}, 0.5, 1.5, 51), leaf({2}, -1, 1, 52)}});
  c.push_back({"batch_norm eval",
               [](const TensorList& x) {
                 Tensor rm = ag::full({2}, 0.1, ag::float64), rv = ag::full({2}, 1.5, ag::float64);
                 return ag::batch_norm(x[0], rm, rv, x[1], Tensor(), false);
               },
               {leaf({3, 2}, -1, 1, 53), leaf({2}, 0.5, 1.5, 54)}});
  c.push_back({"group_norm",
               [](const TensorList& x) { return ag::group_norm(x[0], 2, x[1], x[2]); },
               {leaf({2, 4, 2}, -1, 1, 55), leaf({4}, 0.5, 1.5, 56), leaf({4}, -1, 1, 57)}});
  // ---- losses ----
  Tensor targets = idx({2, 0, 1});
  for (const char* red : {"mean", "sum", "none"})
    c.push_back({std::string("cross_entropy ") + red,
                 [targets, red](const TensorList& x) {
                   return ag::cross_entropy(x[0], targets, red, 0, 0.1);
                 },
                 {leaf({3, 4}, -1, 1, 58)}});
  c.push_back({"cross_entropy unbatched",
               [](const TensorList& x) {
                 return ag::cross_entropy(x[0],
                                          Tensor::from_vector(std::vector<int64_t>{1}).reshape({}));
               },
               {leaf({4}, -1, 1, 59)}});
  c.push_back({"cross_entropy_soft",
               [](const TensorList& x) {
                 return ag::cross_entropy_soft(x[0], ag::softmax(x[1], 1), "mean", 0.1);
               },
               {leaf({3, 4}, -1, 1, 60), leaf({3, 4}, -1, 1, 61)}});
  c.push_back({"cross_entropy_soft none",
               [](const TensorList& x) { return ag::cross_entropy_soft(x[0].t(), x[1], "none"); },
               {leaf({4, 2}, -1, 1, 62), leaf({2, 4}, 0, 1, 63)}});
  // ---- convolution and pooling ----
  c.push_back(
      {"conv2d",
       [](const TensorList& x) { return ag::conv2d(x[0], x[1], x[2], 1, 1); },
       {leaf({1, 2, 3, 3}, -1, 1, 64), leaf({2, 2, 2, 2}, -1, 1, 65), leaf({2}, -1, 1, 66)}});
  c.push_back({"conv2d strided groups",
               [](const TensorList& x) {
                 return ag::conv2d(ag::transpose(x[0], 2, 3), x[1], Tensor(), 2, 0, 1, 2);
               },
               {leaf({1, 2, 4, 3}, -1, 1, 67), leaf({2, 1, 2, 2}, -1, 1, 68)}});
  c.push_back({"conv1d",
               [](const TensorList& x) { return ag::conv1d(x[0], x[1], Tensor(), 1, "same"); },
               {leaf({1, 2, 4}, -1, 1, 69), leaf({1, 2, 3}, -1, 1, 70)}});
  c.push_back({"conv_transpose2d",
               [](const TensorList& x) { return ag::conv_transpose2d(x[0], x[1], Tensor(), 2); },
               {leaf({1, 2, 2, 2}, -1, 1, 71), leaf({2, 1, 2, 2}, -1, 1, 72)}});
  c.push_back({"conv2d_weight",
               [](const TensorList& x) { return ag::conv2d_weight(x[0], x[1], 2, 2); },
               {leaf({1, 1, 3, 3}, -1, 1, 73), leaf({1, 2, 2, 2}, -1, 1, 74)}});
  add_shaped(c, "max_pool2d",
             [](Tensor x) {
               return ag::max_pool2d(ag::reshape(x, {1, 1, 4, 4}), 2, 1, 1);
             },
             {4, 4});
  add_shaped(c, "avg_pool2d",
             [](Tensor x) {
               return ag::avg_pool2d(ag::reshape(x, {1, 1, 3, 4}), 2, 1, 1, false);
             },
             {3, 4});
  add_shaped(c, "adaptive_avg_pool2d",
             [](Tensor x) {
               return ag::adaptive_avg_pool2d(x, {2, 2});
             },
             {3, 3});
  // ---- in-place ops on a recorded result ----
  c.push_back({"in-place ops",
               [](const TensorList& x) {
                 Tensor y = x[0] * 1.0;
                 y.add_(x[1], 0.5).mul_(x[0]).sub_(x[1]).div_(2.0).addcmul_(x[0], x[1], 0.3);
                 y.addcdiv_(x[1], x[0] * x[0] + 1.0, 0.2).lerp_(x[1], 0.25).mul_(1.5).add_(1.0);
                 return y;
               },
               {leaf({2, 3}, -1, 1, 75), leaf({3}, -1, 1, 76)}});
  c.push_back({"in-place copy_ and clamp_",
               [](const TensorList& x) {
                 Tensor y = x[0] * 2.0;
                 y.clamp_(-0.9, 0.9);
                 Tensor z = ag::zeros({2, 3}, ag::float64);
                 z.copy_(x[1]);
                 return y + z;
               },
               {leaf({2, 3}, -0.4, 0.4, 77), leaf({3}, -1, 1, 78)}});
  return c;
}

}  // namespace

TEST_CASE("every differentiable op: JVP against central differences and reverse mode (float64)") {
  int checked_cases = 0;
  for (const Case& k : op_table()) {
    CAPTURE(k.name);
    try {
      ag::GradcheckReport r = ag::gradcheck_forward(k.fn, k.inputs);
      INFO(r.to_string());
      CHECK(r.ok);
      CHECK(r.checked > 0);
      ++checked_cases;
    } catch (const std::exception& e) {
      FAIL_CHECK(e.what());
    }
  }
  CHECK(checked_cases > 150);
}

TEST_CASE("gradcheck with check_forward_ad runs both checks, in full and fast mode") {
  Fn f = [](const TensorList& x) { return ag::tanh(ag::matmul(x[0], x[1])).sum(); };
  TensorList in{leaf({2, 3}, -1, 1, 1), leaf({3, 2}, -1, 1, 2)};
  ag::GradcheckOptions o;
  o.check_forward_ad = true;
  ag::GradcheckReport r = ag::gradcheck(f, in, o);
  CHECK(r.ok);
  CHECK(r.note.find("gradcheck_forward") != std::string::npos);
  CHECK(r.checked > ag::gradcheck(f, in).checked);
  o.fast_mode = true;
  ag::GradcheckReport fast = ag::gradcheck(f, in, o);
  CHECK(fast.ok);
  CHECK(fast.note.find("fast mode") != std::string::npos);
}

namespace {

// sin with a JVP wrong by a factor 1.01, and one with a correct JVP: the forward check must tell
// them apart.
template <bool kWrong>
struct SinWithJvp : ag::Function<SinWithJvp<kWrong>> {
  static constexpr const char* name = "sin_with_jvp";
  static Tensor forward(ag::FunctionContext& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return ag::sin(x);
  }
  static TensorList backward(ag::FunctionContext& ctx, const TensorList& g) {
    return {g[0] * ag::cos(ctx.saved_tensors()[0])};
  }
  static TensorList jvp(ag::FunctionContext& ctx, const TensorList& t) {
    return {t[0] * ag::cos(ctx.saved_tensors()[0]) * (kWrong ? 1.01 : 1.0)};
  }
};

// A custom op without a jvp.
struct Cube : ag::Function<Cube> {
  static constexpr const char* name = "cube_without_jvp";
  static Tensor forward(ag::FunctionContext& ctx, const Tensor& x) {
    ctx.save_for_backward({x});
    return x * x * x;
  }
  static TensorList backward(ag::FunctionContext& ctx, const TensorList& g) {
    Tensor x = ctx.saved_tensors()[0];
    return {g[0] * x * x * 3.0};
  }
};

}  // namespace

TEST_CASE("custom ops: a jvp is used and checked; a wrong one fails; none raises naming the op") {
  TensorList in{leaf({2, 3}, -1, 1, 3)};
  Fn good = [](const TensorList& x) { return SinWithJvp<false>::apply(x[0]); };
  Fn bad = [](const TensorList& x) { return SinWithJvp<true>::apply(x[0]); };
  CHECK(ag::gradcheck_forward(good, in).ok);
  ag::GradcheckReport r = ag::gradcheck_forward(bad, in);
  CHECK_FALSE(r.ok);
  CHECK(r.to_string().find("FAILED") != std::string::npos);
  // Without recording (the input does not require grad) the jvp still runs.
  {
    ag::fwd::DualLevel level;
    Tensor x = ag::fwd::make_dual(test::f64({0.3, -0.2}), test::f64({1.0, 2.0}));
    Tensor t = ag::fwd::unpack_dual(SinWithJvp<false>::apply(x)).tangent;
    REQUIRE(t.defined());
    test::check_values(t, {std::cos(0.3), 2.0 * std::cos(-0.2)});
  }
  ag::fwd::DualLevel level;
  Tensor x = ag::fwd::make_dual(test::f64({0.5, 1.0}), test::f64({1.0, 1.0}));
  CHECK_THROWS_WITH_PARTS(Cube::apply(x), ag::AutogradError, "cube_without_jvp", "JVP rule");
  // Its input requiring grad as well: still an error, not a silent zero.
  Tensor xr = ag::fwd::make_dual(test::f64({0.5, 1.0}).requires_grad_(), test::f64({1.0, 1.0}));
  CHECK_THROWS_WITH_PARTS(Cube::apply(xr), ag::AutogradError, "cube_without_jvp");
  // A plain (non-dual) input is fine.
  CHECK(Cube::apply(test::f64({2.0})).item() == doctest::Approx(8.0));
}

TEST_CASE("make_dual / unpack_dual: values, tangents, errors") {
  Tensor p = test::f64({1.0, 2.0, 3.0}), v = test::f64({0.5, -1.0, 2.0});
  CHECK_THROWS_WITH_PARTS(ag::fwd::make_dual(p, v), ag::AutogradError, "make_dual", "DualLevel");
  {
    ag::fwd::DualLevel level;
    CHECK(ag::fwd::is_level_open());
    Tensor x = ag::fwd::make_dual(p, v);
    auto [primal, tangent] = ag::fwd::unpack_dual(x);
    test::check_values(primal, {1, 2, 3});
    CHECK(tangent.same(v));
    CHECK_FALSE(ag::fwd::unpack_dual(primal).tangent.defined());
    CHECK_FALSE(ag::fwd::unpack_dual(p).tangent.defined());  // p itself is untouched
    CHECK_FALSE(ag::fwd::unpack_dual(x.detach()).tangent.defined());
    // y = x^2 * 3: tangent 6 x v.
    Tensor y = x * x * 3.0;
    test::check_values(ag::fwd::unpack_dual(y).tangent, {3.0, -12.0, 36.0});
    CHECK_THROWS_WITH_PARTS(ag::fwd::make_dual(p, test::f64({1.0, 2.0})), ag::ShapeError,
                            "make_dual", "[2]", "[3]");
    CHECK_THROWS_WITH_PARTS(ag::fwd::make_dual(p, v.to(ag::float32)), ag::DtypeError, "make_dual",
                            "float32", "float64");
    CHECK_THROWS_WITH_PARTS(
        ag::fwd::make_dual(Tensor::from_vector(std::vector<int64_t>{1, 2, 3}), v), ag::DtypeError,
        "make_dual");
    CHECK_THROWS_WITH_PARTS(ag::fwd::make_dual(p, x), ag::AutogradError, "make_dual", "dual");
    CHECK_THROWS_WITH_PARTS(ag::fwd::DualLevel(), ag::AutogradError, "DualLevel", "nest");
    // Outside the level the tangent is gone.
    p = y;
  }
  CHECK_FALSE(ag::fwd::is_level_open());
  CHECK_FALSE(ag::fwd::unpack_dual(p).tangent.defined());
  ag::fwd::DualLevel again;
  CHECK_FALSE(ag::fwd::unpack_dual(p).tangent.defined());  // a new level: old tangents stay dead
}

TEST_CASE("views of a dual are duals of the viewed tangent; integer outputs carry none") {
  ag::fwd::DualLevel level;
  Tensor p = test::f64({1, 2, 3, 4, 5, 6}, {2, 3}), v = test::f64({10, 20, 30, 40, 50, 60}, {2, 3});
  Tensor x = ag::fwd::make_dual(p, v);
  Tensor s = x.slice(1, 0, 3, 2);  // [[1, 3], [4, 6]]
  Tensor ts = ag::fwd::unpack_dual(s).tangent;
  test::check_values(ts, {10, 30, 40, 60});
  // The tangent is a view of the tangent (same storage), like the value is a view of the value.
  CHECK(ts.impl()->storage == v.impl()->storage);
  test::check_values(ag::fwd::unpack_dual(x.t()[2]).tangent, {30, 60});
  test::check_values(ag::fwd::unpack_dual(x.reshape({6})).tangent, {10, 20, 30, 40, 50, 60});
  std::vector<Tensor> pieces = ag::split(x, 2, 1);
  test::check_values(ag::fwd::unpack_dual(pieces[1]).tangent, {30, 60});
  // Not differentiable: integer and bool results have no tangent; sign's tangent is zero.
  CHECK_FALSE(ag::fwd::unpack_dual(ag::argmax(x, 1)).tangent.defined());
  CHECK_FALSE(ag::fwd::unpack_dual(ag::max(x, 1).second).tangent.defined());
  CHECK_FALSE(ag::fwd::unpack_dual(ag::gt(x, x * 0.5)).tangent.defined());
  test::check_values(ag::fwd::unpack_dual(ag::sign(x)).tangent, {0, 0, 0, 0, 0, 0});
}

TEST_CASE("in-place ops on a dual update its tangent, without recording too") {
  ag::fwd::DualLevel level;
  Tensor x = ag::fwd::make_dual(test::f64({1, 2, 3}), test::f64({1, 1, 1}));
  Tensor other = ag::fwd::make_dual(test::f64({4, 5, 6}), test::f64({0.5, 0.5, 0.5}));
  Tensor t_before = ag::fwd::unpack_dual(x).tangent;
  x.mul_(2.0);    // tangent 2
  x.add_(other);  // tangent 2.5
  x.mul_(x);      // d(x^2) = 2 x t: x = (6, 9, 12)
  test::check_values(x, {36, 81, 144});
  test::check_values(ag::fwd::unpack_dual(x).tangent, {30, 45, 60});
  // The tangent was updated in place: the handle taken before sees it.
  test::check_values(t_before, {30, 45, 60});
  // An in-place op on a view writes through to the base's tangent.
  Tensor base = ag::fwd::make_dual(test::f64({1, 2, 3, 4}), test::f64({1, 1, 1, 1}));
  base.slice(0, 1, 3).mul_(3.0);
  test::check_values(base, {1, 6, 9, 4});
  test::check_values(ag::fwd::unpack_dual(base).tangent, {1, 3, 3, 1});
  // A plain tensor that takes a dual operand becomes a dual; fill_ makes the tangent zero.
  Tensor plain = test::f64({1, 1, 1});
  plain.add_(other);
  test::check_values(ag::fwd::unpack_dual(plain).tangent, {0.5, 0.5, 0.5});
  plain.fill_(2.0);
  test::check_values(ag::fwd::unpack_dual(plain).tangent, {0, 0, 0});
}

namespace {

// A composite function R^n -> R for the second-order checks.
Tensor composite(const Tensor& x) {
  Tensor h = ag::tanh(ag::matmul(ag::reshape(x, {2, 3}), ag::reshape(ag::exp(x * 0.3), {3, 2})));
  return ag::sum(ag::softmax(h, 1) * ag::log_softmax(h + x.slice(0, 0, 2), 0)) +
         ag::sum(ag::gelu(x) * ag::sigmoid(x));
}

// H v by reverse over reverse: the gradient of <grad f(x), v>.
Tensor hvp_reverse(const Tensor& x0, const Tensor& v) {
  Tensor x = x0.detach().clone().requires_grad_();
  Tensor g = ag::grad({composite(x)}, {x}, {}, false, true)[0];
  return ag::grad({ag::sum(g * v)}, {x})[0];
}

}  // namespace

TEST_CASE("forward over reverse: the tangent of a gradient is a Hessian-vector product") {
  Tensor x0 = leaf({6}, -1, 1, 80).detach(), v = leaf({6}, -1, 1, 81).detach();
  Tensor expected = hvp_reverse(x0, v);
  for (bool create_graph : {false, true}) {
    CAPTURE(create_graph);
    ag::fwd::DualLevel level;
    Tensor x = ag::fwd::make_dual(x0.clone().requires_grad_(), v);
    Tensor g = ag::grad({composite(x)}, {x}, {}, false, create_graph)[0];
    Tensor hv = ag::fwd::unpack_dual(g).tangent;
    REQUIRE(hv.defined());
    CHECK(test::allclose(hv, expected, 1e-10, 1e-10));
  }
}

TEST_CASE("reverse over forward: backward through a JVP differentiates it") {
  // d/dx <u, J(x) v> = H_u v, where H_u is the Hessian of <u, f(x)>; here f = composite (one
  // output), so it is the Hessian-vector product again.
  Tensor x0 = leaf({6}, -1, 1, 82).detach(), v = leaf({6}, -1, 1, 83).detach();
  Tensor expected = hvp_reverse(x0, v);
  Tensor x = x0.clone().requires_grad_();
  Tensor jv;
  {
    ag::fwd::DualLevel level;
    jv = ag::fwd::unpack_dual(composite(ag::fwd::make_dual(x, v))).tangent;
  }
  REQUIRE(jv.requires_grad());
  Tensor g = ag::grad({jv}, {x})[0];
  CHECK(test::allclose(g, expected, 1e-10, 1e-10));
  // And the JVP itself matches <grad f, v>.
  Tensor xr = x0.clone().requires_grad_();
  Tensor gr = ag::grad({composite(xr)}, {xr})[0];
  CHECK(jv.item() == doctest::Approx(ag::sum(gr * v).item()).epsilon(1e-12));
}

TEST_CASE("tangents that require grad are recorded: d tangent / d v") {
  // f(x) = sum(x^3): J v = sum(3 x^2 v), d/dv = 3 x^2.
  Tensor x0 = test::f64({0.5, -1.0, 2.0});
  Tensor v = test::f64({1.0, 2.0, 3.0}).requires_grad_();
  Tensor jv;
  {
    ag::fwd::DualLevel level;
    jv = ag::fwd::unpack_dual(ag::sum(ag::pow(ag::fwd::make_dual(x0, v), 3.0))).tangent;
  }
  jv.backward();
  test::check_values(v.grad(), {0.75, 3.0, 12.0});
}

TEST_CASE("forward over reverse through the ops with a fused backward (linear, layer_norm, ...)") {
  // Inside a level the engine takes their differentiable backward, so tangents flow through it.
  Tensor x = leaf({2, 1, 4, 4}, -1, 1, 84).detach();
  Tensor targets = Tensor::from_vector(std::vector<int64_t>{2, 0});
  auto f = [&](const Tensor& w) {
    Tensor h = ag::max_pool2d(x * ag::sum(w), 2);  // [2, 1, 2, 2]
    h = ag::layer_norm(ag::reshape(h, {2, 4}), {4}, ag::slice(w, 0, 0, 1).reshape({4}));
    return ag::cross_entropy(ag::linear(h, w), targets);  // w: [3, 4]
  };
  Tensor w0 = leaf({3, 4}, -1, 1, 85).detach(), v = leaf({3, 4}, -1, 1, 86).detach();
  Tensor w = w0.clone().requires_grad_();
  Tensor g = ag::grad({f(w)}, {w}, {}, false, true)[0];
  Tensor expected = ag::grad({ag::sum(g * v)}, {w})[0];
  ag::fwd::DualLevel level;
  Tensor wd = ag::fwd::make_dual(w0.clone().requires_grad_(), v);
  Tensor hv = ag::fwd::unpack_dual(ag::grad({f(wd)}, {wd})[0]).tangent;
  REQUIRE(hv.defined());
  CHECK(test::allclose(hv, expected, 1e-10, 1e-10));
}

TEST_CASE("a level frees the reference cycles its tangents form when it ends") {
  // exp's tangent is t * out: when it is recorded (the primal requires grad), its mul node saves
  // out, which holds the tangent: out -> tangent -> mul -> out. Forward over reverse adds saved
  // outputs that keep tangents whose graph leads back to the saving node. Nothing may stay alive
  // once the level has ended and the handles are gone.
  Tensor x0 = leaf({6}, -1, 1, 90).detach(), v = leaf({6}, -1, 1, 91).detach();
  auto live = [] { return ag::memory_stats(); };
  // Warm-up: the first op may create lasting state (buffer pools, thread counters).
  {
    ag::fwd::DualLevel level;
    Tensor x = ag::fwd::make_dual(x0.clone().requires_grad_(), v);
    ag::grad({composite(x)}, {x}, {}, false, true);
  }
  const ag::MemoryStats before = live();
  Tensor kept;
  {
    ag::fwd::DualLevel level;
    Tensor x = ag::fwd::make_dual(x0.clone().requires_grad_(), v);
    Tensor y = ag::sum(ag::exp(x) + ag::tanh(x) * ag::sigmoid(x));
    Tensor g = ag::grad({composite(x)}, {x}, {}, false, true)[0];
    Tensor hv = ag::fwd::unpack_dual(g).tangent;
    REQUIRE(hv.defined());
    CHECK(live().live_nodes > before.live_nodes);
    kept = ag::fwd::unpack_dual(y).tangent;  // a tangent may outlive its level
  }
  CHECK(kept.defined());
  CHECK(kept.requires_grad());  // recorded: it still has its graph
  kept = Tensor();
  const ag::MemoryStats after = live();
  CHECK(after.live_nodes == before.live_nodes);
  CHECK(after.live_tensors == before.live_tensors);
  CHECK(after.live_storages == before.live_storages);
}
