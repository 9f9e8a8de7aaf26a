#include "nn/init.h"

#include <cmath>

namespace ag::nn::init {

namespace {
void assign(Tensor& t, const Tensor& values) {
  NoGradGuard ng;
  t.copy_(values);
}
int64_t fan(const Tensor& t, std::string_view mode) {
  auto [in, out] = fans(t);
  if (mode == "fan_in") return in;
  if (mode == "fan_out") return out;
  fail<ValueError>("kaiming init: mode must be fan_in or fan_out, got '{}'", mode);
}
}  // namespace

double calculate_gain(std::string_view nl, double param) {
  if (nl == "linear" || nl == "identity" || nl == "sigmoid" || nl == "conv") return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nl == "selu") return 0.75;
  fail<ValueError>("calculate_gain: unknown nonlinearity '{}'", nl);
}

std::pair<int64_t, int64_t> fans(const Tensor& w) {
  if (w.dim() < 2)
    fail<ShapeError>("init: fan in/out need a weight with at least 2 axes, got {}", w.shape());
  int64_t receptive = 1;
  for (int64_t i = 2; i < w.dim(); ++i) receptive *= w.shape()[i];
  return {w.shape()[1] * receptive, w.shape()[0] * receptive};
}

void uniform_(Tensor& t, double lo, double hi, Generator* gen) {
  assign(t, uniform(t.shape(), lo, hi, t.dtype(), gen));
}
void normal_(Tensor& t, double mean, double std, Generator* gen) {
  assign(t, normal(t.shape(), mean, std, t.dtype(), gen));
}
void zeros_(Tensor& t) { constant_(t, 0.0); }
void ones_(Tensor& t) { constant_(t, 1.0); }
void constant_(Tensor& t, double value) {
  NoGradGuard ng;
  t.fill_(value);
}
void xavier_uniform_(Tensor& t, double gain, Generator* gen) {
  auto [in, out] = fans(t);
  double b = gain * std::sqrt(6.0 / static_cast<double>(in + out));
  uniform_(t, -b, b, gen);
}
void xavier_normal_(Tensor& t, double gain, Generator* gen) {
  auto [in, out] = fans(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(in + out)), gen);
}
void kaiming_uniform_(Tensor& t, double a, std::string_view mode, std::string_view nl,
                      Generator* gen) {
  double b = calculate_gain(nl, a) * std::sqrt(3.0 / static_cast<double>(fan(t, mode)));
  uniform_(t, -b, b, gen);
}
void kaiming_normal_(Tensor& t, double a, std::string_view mode, std::string_view nl,
                     Generator* gen) {
  normal_(t, 0.0, calculate_gain(nl, a) / std::sqrt(static_cast<double>(fan(t, mode))), gen);
}

}  // namespace ag::nn::init
