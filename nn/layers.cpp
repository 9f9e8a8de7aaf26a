#include "nn/layers.h"

#include "nn/init.h"

namespace ag::nn {

namespace {
uint64_t fresh_seed() {
  Generator& g = default_generator();
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.next();
}
}  // namespace

Dropout::Dropout(double p) : Dropout(p, fresh_seed()) {}

Dropout::Dropout(double p, uint64_t seed) : p(p), generator(seed) {
  if (!(p >= 0 && p <= 1)) fail<ValueError>("Dropout: probability {} is outside [0, 1]", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training(), &generator); }

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

Embedding::Embedding(int64_t num, int64_t dim, Generator* gen) : num_embeddings(num), dim(dim) {
  if (num <= 0 || dim <= 0)
    fail<ValueError>("Embedding: sizes must be positive, got {} x {}", num, dim);
  weight = register_parameter("weight", Tensor::empty({num, dim}));
  init::normal_(weight, 0.0, 1.0, gen);
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(weight, indices); }

}  // namespace ag::nn
