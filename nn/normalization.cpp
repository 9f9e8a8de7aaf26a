#include "nn/normalization.h"

namespace ag::nn {

LayerNorm::LayerNorm(const Shape& shape, double eps, bool affine)
    : normalized_shape(shape), eps(eps) {
  if (shape.empty()) fail<ValueError>("LayerNorm: normalized_shape must not be empty");
  if (affine) {
    weight = register_parameter("weight", ones(shape));
    bias = register_parameter("bias", zeros(shape));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  int64_t n = normalized_shape.size();
  bool fits = x.dim() >= n;
  for (int64_t i = 0; fits && i < n; ++i) fits = x.shape()[x.dim() - n + i] == normalized_shape[i];
  if (!fits)
    fail<ShapeError>("LayerNorm: input {} does not end with the normalized shape {}", x.shape(),
                     normalized_shape);
  return layer_norm(x, normalized_shape, weight, bias, eps);
}

BatchNorm::BatchNorm(const char* name, int64_t lo, int64_t hi, int64_t features, double eps,
                     std::optional<double> momentum, bool affine, bool track)
    : num_features(features),
      eps(eps),
      momentum(momentum),
      name_(name),
      dims_lo_(lo),
      dims_hi_(hi) {
  if (features <= 0) fail<ValueError>("{}: num_features must be positive, got {}", name, features);
  if (momentum && !(*momentum >= 0 && *momentum <= 1))
    fail<ValueError>("{}: momentum must be in [0, 1] (or none for a cumulative average), got {}",
                     name, *momentum);
  if (affine) {
    weight = register_parameter("weight", ones({features}));
    bias = register_parameter("bias", zeros({features}));
  }
  if (track) {
    running_mean = register_buffer("running_mean", zeros({features}));
    running_var = register_buffer("running_var", ones({features}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, int64));
  }
}

void BatchNorm::complete_state_dict(const std::string& prefix, StateDict& state) const {
  if (!num_batches_tracked.defined()) return;
  bool has_stats = false;
  for (auto& [name, _] : state) {
    if (name == prefix + "num_batches_tracked") return;
    has_stats = has_stats || name == prefix + "running_mean";
  }
  if (has_stats) state.emplace_back(prefix + "num_batches_tracked", zeros({}, int64));
}

Tensor BatchNorm::forward(const Tensor& x) {
  if (x.dim() < dims_lo_ || x.dim() > dims_hi_ || x.size(1) != num_features)
    fail<ShapeError>("{}: expected an input of {} with {} channels on axis 1, got {}", name_,
                     dims_lo_ == dims_hi_ ? "[N, C, H, W]" : "[N, C] or [N, C, L]", num_features,
                     x.shape());
  // Without running statistics the batch's own are used in both modes, as in PyTorch.
  const bool use_batch = is_training() || !running_mean.defined();
  double factor = momentum.value_or(0.0);
  if (is_training() && num_batches_tracked.defined()) {
    int64_t& count = num_batches_tracked.data<int64_t>()[0];  // a 0-D buffer, never recorded
    ++count;
    if (!momentum) factor = 1.0 / static_cast<double>(count);
  }
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch, factor, eps);
}

GroupNorm::GroupNorm(int64_t groups, int64_t channels, double eps, bool affine)
    : num_groups(groups), num_channels(channels), eps(eps) {
  if (groups <= 0 || channels <= 0 || channels % groups != 0)
    fail<ValueError>("GroupNorm: {} groups must be positive and divide the {} channels", groups,
                     channels);
  if (affine) {
    weight = register_parameter("weight", ones({channels}));
    bias = register_parameter("bias", zeros({channels}));
  }
}

Tensor GroupNorm::forward(const Tensor& x) {
  if (x.dim() < 2 || x.size(1) != num_channels)
    fail<ShapeError>("GroupNorm: expected an input [N, {}, ...], got {}", num_channels, x.shape());
  return group_norm(x, num_groups, weight, bias, eps);
}

}  // namespace ag::nn
