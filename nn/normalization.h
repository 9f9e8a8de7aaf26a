// BatchNorm1d, BatchNorm2d and GroupNorm (ops batch_norm and group_norm in autograd/ops/norm.h).
//
// BatchNorm normalises each channel with the batch's statistics in training mode, updating the
// buffers running_mean (initially 0) and running_var (initially 1) with `momentum`, and with those
// buffers in evaluation mode (eval()). The buffers are part of state_dict, so checkpoints keep
// them. weight = 1 and bias = 0 initially (PyTorch's default), absent when affine is false.
#pragma once

#include <string>

#include "nn/module.h"

namespace ag::nn {

class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  int64_t num_features;
  double eps, momentum;
  Tensor weight, bias;               // [C], undefined without affine
  Tensor running_mean, running_var;  // [C] buffers, undefined without track_running_stats

 protected:
  BatchNorm(const char* name, int64_t expected_dims_lo, int64_t expected_dims_hi,
            int64_t num_features, double eps, double momentum, bool affine,
            bool track_running_stats);

 private:
  const char* name_;
  int64_t dims_lo_, dims_hi_;
};

// x [N, C] or [N, C, L].
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNorm("BatchNorm1d", 2, 3, num_features, eps, momentum, affine, track_running_stats) {}
  std::string type_name() const override { return "BatchNorm1d"; }
};

// x [N, C, H, W].
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNorm("BatchNorm2d", 4, 4, num_features, eps, momentum, affine, track_running_stats) {}
  std::string type_name() const override { return "BatchNorm2d"; }
};

// group_norm over num_groups groups of channels; weight = 1, bias = 0 ([C]) when affine. The same
// in training and evaluation.
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5, bool affine = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GroupNorm"; }
  int64_t num_groups, num_channels;
  double eps;
  Tensor weight, bias;
};

}  // namespace ag::nn
