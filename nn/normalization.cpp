#include "nn/normalization.h"

namespace ag::nn {

BatchNorm::BatchNorm(const char* name, int64_t lo, int64_t hi, int64_t features, double eps,
                     double momentum, bool affine, bool track)
    : num_features(features),
      eps(eps),
      momentum(momentum),
      name_(name),
      dims_lo_(lo),
      dims_hi_(hi) {
  if (features <= 0) fail<ValueError>("{}: num_features must be positive, got {}", name, features);
  if (affine) {
    weight = register_parameter("weight", ones({features}));
    bias = register_parameter("bias", zeros({features}));
  }
  if (track) {
    running_mean = register_buffer("running_mean", zeros({features}));
    running_var = register_buffer("running_var", ones({features}));
  }
}

Tensor BatchNorm::forward(const Tensor& x) {
  if (x.dim() < dims_lo_ || x.dim() > dims_hi_ || x.size(1) != num_features)
    fail<ShapeError>("{}: expected an input of {} with {} channels on axis 1, got {}", name_,
                     dims_lo_ == dims_hi_ ? "[N, C, H, W]" : "[N, C] or [N, C, L]", num_features,
                     x.shape());
  // Without running statistics the batch's own are used in both modes, as in PyTorch.
  const bool use_batch = is_training() || !running_mean.defined();
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch, momentum, eps);
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
