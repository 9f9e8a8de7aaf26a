#include "nn/optim/scheduler.h"

#include <cmath>
#include <numbers>

namespace ag::nn {

LRScheduler::LRScheduler(Optimizer& opt) : opt_(opt) {
  for (size_t g = 0; g < opt.num_groups(); ++g) base_.push_back(opt.lr(g));
}

void LRScheduler::step() {
  ++t_;
  for (size_t i = 0; i < opt_.num_groups() && i < base_.size(); ++i) opt_.set_lr(i, lr(t_, i));
}

StepLR::StepLR(Optimizer& opt, int64_t step_size, double gamma)
    : LRScheduler(opt), step_size(step_size), gamma(gamma) {
  if (step_size <= 0) fail<ValueError>("StepLR: step_size must be positive, got {}", step_size);
}
double StepLR::factor(int64_t t) const {
  return std::pow(gamma, static_cast<double>(t / step_size));
}

ExponentialLR::ExponentialLR(Optimizer& opt, double gamma) : LRScheduler(opt), gamma(gamma) {}
double ExponentialLR::factor(int64_t t) const { return std::pow(gamma, static_cast<double>(t)); }

CosineWarmupLR::CosineWarmupLR(Optimizer& opt, int64_t warmup, int64_t total, double min_factor)
    : LRScheduler(opt), warmup(warmup), total(total), min_factor(min_factor) {
  if (warmup < 0 || total <= 0 || warmup > total)
    fail<ValueError>("CosineWarmupLR: need 0 <= warmup ({}) <= total ({}), total > 0", warmup,
                     total);
  // Start at the warmup's first value.
  for (size_t i = 0; i < base_.size(); ++i) opt.set_lr(i, lr(0, i));
}
double CosineWarmupLR::factor(int64_t t) const {
  if (t < warmup) return static_cast<double>(t + 1) / static_cast<double>(warmup + 1);
  if (t >= total) return min_factor;
  double progress =
      static_cast<double>(t - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  return min_factor + (1 - min_factor) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
}

LinearDecayLR::LinearDecayLR(Optimizer& opt, int64_t total, double end_factor, int64_t warmup)
    : LRScheduler(opt), total(total), end_factor(end_factor), warmup(warmup) {
  if (total <= 0 || warmup < 0 || warmup > total)
    fail<ValueError>("LinearDecayLR: need 0 <= warmup ({}) <= total ({}), total > 0", warmup,
                     total);
  for (size_t i = 0; i < base_.size(); ++i) opt.set_lr(i, lr(0, i));
}
double LinearDecayLR::factor(int64_t t) const {
  if (t < warmup) return static_cast<double>(t + 1) / static_cast<double>(warmup + 1);
  if (t >= total) return end_factor;
  double progress =
      static_cast<double>(t - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  return 1 + (end_factor - 1) * progress;
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  NoGradGuard ng;
  if (!(norm_type > 0)) fail<ValueError>("clip_grad_norm_: norm_type must be positive");
  // Each gradient's norm by ag::norm, combined: the largest for p = infinity, else
  // (sum n_i^p)^(1/p). The 2-norm reads a float32 gradient as it is (two passes, no copy); other p
  // (|g|^p can leave float32's range) and bfloat16 gradients go through float64.
  double total = 0;
  bool inf_norm = std::isinf(norm_type);
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    const bool as_is = norm_type == 2 && g.dtype() != bfloat16;
    const double n = norm(as_is ? g : g.to(float64), norm_type).item();
    if (inf_norm) {
      if (!(n <= total) && !std::isnan(total)) total = n;  // a NaN norm stays NaN
    } else {
      total += std::pow(n, norm_type);
    }
  }
  if (!inf_norm) total = std::pow(total, 1.0 / norm_type);
  double scale = max_norm / (total + 1e-6);
  if (scale < 1)
    for (const Tensor& p : params) {
      Tensor g = p.grad();
      if (g.defined()) g.mul_(scale);
    }
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip) {
  NoGradGuard ng;
  if (!(clip >= 0)) fail<ValueError>("clip_grad_value_: clip must be non-negative, got {}", clip);
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (g.defined()) g.clamp_(-clip, clip);
  }
}

}  // namespace ag::nn
