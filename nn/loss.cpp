#include "nn/loss.h"

namespace ag::nn {

namespace {
// Losses against float targets refuse a NaN target (it would make every gradient NaN) and a
// "mean" over an empty batch (0 / 0), naming the op and the shapes.
void check_target(const char* op, const Tensor& pred, const Tensor& target,
                  std::string_view reduction) {
  if (reduction == "mean" && pred.numel() == 0)
    fail<ValueError>("{}: empty batch (prediction {}) with reduction 'mean'; use 'sum' or 'none'",
                     op, pred.shape());
  if (is_floating(target.dtype()) && target.numel() > 0) {
    NoGradGuard ng;
    if (sum(ne(target, target)).item() != 0)
      fail<ValueError>("{}: target of shape {} (prediction {}) holds NaN", op, target.shape(),
                       pred.shape());
  }
}
}  // namespace

Tensor reduce_loss(const Tensor& losses, std::string_view reduction, const char* op) {
  if (reduction == "mean") return mean(losses);
  if (reduction == "sum") return sum(losses);
  if (reduction == "none") return losses;
  fail<ValueError>("{}: reduction must be mean, sum or none, got '{}'", op, reduction);
}

Tensor mse_loss(const Tensor& pred, const Tensor& target, std::string_view reduction) {
  if (!(broadcast_shapes(pred.shape(), target.shape(), "mse_loss") == pred.shape()))
    fail<ShapeError>("mse_loss: target {} does not match prediction {}", target.shape(),
                     pred.shape());
  check_target("mse_loss", pred, target, reduction);
  Tensor d = sub(pred, target);
  return reduce_loss(mul(d, d), reduction, "mse_loss");
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, std::string_view reduction,
                     int64_t ignore_index, double label_smoothing) {
  if (is_floating(target.dtype()))
    return cross_entropy_soft(logits, target, reduction, label_smoothing);
  return ag::cross_entropy(logits, target, reduction, ignore_index, label_smoothing);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, std::string_view reduction,
                int64_t ignore_index) {
  if (log_probs.dim() != 2 || target.dim() != 1 || target.shape()[0] != log_probs.shape()[0])
    fail<ShapeError>("nll_loss: expected log-probabilities [N, C] and targets [N], got {} and {}",
                     log_probs.shape(), target.shape());
  if (target.dtype() != int64)
    fail<DtypeError>("nll_loss: targets must be int64 class indices, got {}",
                     dtype_name(target.dtype()));
  int64_t c = log_probs.shape()[1];
  if (reduction == "mean" && log_probs.shape()[0] == 0)
    fail<ValueError>("nll_loss: empty batch (log-probabilities {}) with reduction 'mean'",
                     log_probs.shape());
  Tensor keep = ne(target, full({}, static_cast<double>(ignore_index), int64));
  Tensor safe = where(keep, target, zeros({}, int64));
  auto t = safe.to_vector<int64_t>();
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i] < 0 || t[i] >= c)
      fail<IndexError>("nll_loss: target {} at row {} is outside [0, {})", t[i], i, c);
  Tensor picked = squeeze(gather(log_probs, 1, unsqueeze(safe, 1)), 1);
  Tensor w = keep.to(log_probs.dtype());
  Tensor losses = neg(mul(picked, w));
  if (reduction == "mean") return div(sum(losses), sum(w));
  return reduce_loss(losses, reduction, "nll_loss");
}

Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& y,
                                        std::string_view reduction, const Tensor& pos_weight) {
  if (!(x.shape() == y.shape()))
    fail<ShapeError>("binary_cross_entropy_with_logits: target {} does not match logits {}",
                     y.shape(), x.shape());
  check_target("binary_cross_entropy_with_logits", x, y, reduction);
  // log(1 + e^-|x|) + max(x, 0) = softplus(x); loss = softplus(x) - x y   (no pos_weight)
  // with pos_weight p: loss = (1 - y) x + (1 + (p - 1) y) softplus(-x)
  Tensor losses;
  if (pos_weight.defined()) {
    Tensor l = add(mul(add(pos_weight, -1.0), y), 1.0);
    losses = add(mul(rsub(y, 1.0), x), mul(l, softplus(neg(x))));
  } else {
    losses = sub(softplus(x), mul(x, y));
  }
  return reduce_loss(losses, reduction, "binary_cross_entropy_with_logits");
}

}  // namespace ag::nn
