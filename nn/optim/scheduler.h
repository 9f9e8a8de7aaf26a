// Learning-rate schedules. Each sets the lr of every group of an optimizer from the step count:
// call step() once per optimizer step (or per epoch, as you define it). lr(t) is also queryable.
#pragma once

#include "nn/optim/optimizer.h"

namespace ag::nn {

class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& opt);
  virtual ~LRScheduler() = default;
  // Advances one step and applies lr(step) to the optimizer.
  void step();
  int64_t last_step() const { return t_; }
  // The factor for step t applied to each group's initial lr.
  virtual double factor(int64_t t) const = 0;
  double lr(int64_t t, size_t group = 0) const { return base_[group] * factor(t); }

 protected:
  Optimizer& opt_;
  std::vector<double> base_;
  int64_t t_ = 0;
};

// lr = base * gamma^floor(t / step_size)
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& opt, int64_t step_size, double gamma = 0.1);
  double factor(int64_t t) const override;
  int64_t step_size;
  double gamma;
};

// lr = base * gamma^t
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& opt, double gamma);
  double factor(int64_t t) const override;
  double gamma;
};

// Linear warmup from 0 over `warmup` steps, then cosine decay to min_factor * base at `total` steps
// (and min_factor after).
class CosineWarmupLR : public LRScheduler {
 public:
  CosineWarmupLR(Optimizer& opt, int64_t warmup, int64_t total, double min_factor = 0.0);
  double factor(int64_t t) const override;
  int64_t warmup, total;
  double min_factor;
};

// Linear decay from base (after an optional linear warmup) to end_factor * base at `total` steps.
class LinearDecayLR : public LRScheduler {
 public:
  LinearDecayLR(Optimizer& opt, int64_t total, double end_factor = 0.0, int64_t warmup = 0);
  double factor(int64_t t) const override;
  int64_t total;
  double end_factor;
  int64_t warmup;
};

// Scales gradients so their global norm (2-norm by default; norm_type p: the p-norm, INFINITY: the
// largest |g|) is at most max_norm; returns the norm before clipping. The 2-norm sums the squares
// in the gradients' own dtype with the engine's sum (interleaved partial sums: relative error near
// the dtype's rounding), two passes over each gradient; other norms go through float64 copies.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);
// Clamps every gradient element into [-clip, clip].
void clip_grad_value_(const std::vector<Tensor>& params, double clip);

}  // namespace ag::nn
