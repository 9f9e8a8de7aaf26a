// Parameter initialisation, in place (under NoGradGuard), with PyTorch's formulas.
// fan_in / fan_out of a [out, in, ...] weight: in * receptive field / out * receptive field.
#pragma once

#include <string_view>

#include "autograd/autograd.h"

namespace ag::nn::init {

// Gain for a nonlinearity: linear/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2/(1+a^2)).
double calculate_gain(std::string_view nonlinearity, double param = 0.01);
std::pair<int64_t, int64_t> fans(const Tensor& w);  // (fan_in, fan_out)

void uniform_(Tensor& t, double lo, double hi, Generator* gen = nullptr);
void normal_(Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
void zeros_(Tensor& t);
void ones_(Tensor& t);
void constant_(Tensor& t, double value);
// U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))
void xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// N(0, s^2), s = gain * sqrt(2 / (fan_in + fan_out))
void xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// U(-b, b), b = gain(nonlinearity, a) * sqrt(3 / fan), fan = fan_in (mode "fan_in") or fan_out
void kaiming_uniform_(Tensor& t, double a = 0.0, std::string_view mode = "fan_in",
                      std::string_view nonlinearity = "leaky_relu", Generator* gen = nullptr);
// N(0, s^2), s = gain(nonlinearity, a) / sqrt(fan)
void kaiming_normal_(Tensor& t, double a = 0.0, std::string_view mode = "fan_in",
                     std::string_view nonlinearity = "leaky_relu", Generator* gen = nullptr);

}  // namespace ag::nn::init
