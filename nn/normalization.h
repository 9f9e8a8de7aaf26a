// Normalisation layers: LayerNorm, BatchNorm1d, BatchNorm2d and GroupNorm (ops layer_norm,
// batch_norm and group_norm in autograd/ops/norm.h).
//
// BatchNorm normalises each channel with the batch's statistics in training mode, updating the
// buffers running_mean (initially 0) and running_var (initially 1) with `momentum`, and with those
// buffers in evaluation mode (eval()). A third buffer, num_batches_tracked (int64, 0-D, initially
// 0), counts the training batches seen; with momentum std::nullopt (PyTorch's momentum=None) the
// running statistics are the cumulative average of all batches so far, the update factor being
// 1 / num_batches_tracked. The buffers are part of state_dict, so checkpoints keep them; a
// checkpoint written before num_batches_tracked existed loads with the count set to 0, as in
// PyTorch. weight = 1 and bias = 0 initially (PyTorch's default), absent when affine is false.
#pragma once

#include <optional>
#include <string>

#include "nn/module.h"

namespace ag::nn {

// LayerNorm over the last axes (normalized_shape): y = (x - mean) / sqrt(var + eps) * weight +
// bias, with the biased variance. weight = 1, bias = 0 initially.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(const Shape& normalized_shape, double eps = 1e-5,
                     bool elementwise_affine = true);
  explicit LayerNorm(int64_t features, double eps = 1e-5) : LayerNorm(Shape{features}, eps) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LayerNorm"; }
  Shape normalized_shape;
  double eps;
  Tensor weight, bias;
};

class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  int64_t num_features;
  double eps;
  std::optional<double> momentum;    // std::nullopt: cumulative average
  Tensor weight, bias;               // [C], undefined without affine
  Tensor running_mean, running_var;  // [C] buffers, undefined without track_running_stats
  Tensor num_batches_tracked;        // int64 [] buffer, undefined without track_running_stats

 protected:
  BatchNorm(const char* name, int64_t expected_dims_lo, int64_t expected_dims_hi,
            int64_t num_features, double eps, std::optional<double> momentum, bool affine,
            bool track_running_stats);
  // Older checkpoints have no num_batches_tracked: it loads as 0.
  void complete_state_dict(const std::string& prefix, StateDict& state) const override;

 private:
  const char* name_;
  int64_t dims_lo_, dims_hi_;
};

// x [N, C] or [N, C, L].
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm("BatchNorm1d", 2, 3, num_features, eps, momentum, affine, track_running_stats) {}
  std::string type_name() const override { return "BatchNorm1d"; }
};

// x [N, C, H, W].
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
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
