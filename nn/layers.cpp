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

Embedding::Embedding(int64_t num, int64_t dim, Generator* gen) : num_embeddings(num), dim(dim) {
  if (num <= 0 || dim <= 0)
    fail<ValueError>("Embedding: sizes must be positive, got {} x {}", num, dim);
  weight = register_parameter("weight", Tensor::empty({num, dim}));
  init::normal_(weight, 0.0, 1.0, gen);
}

Tensor Embedding::forward(const Tensor& indices) {
  Tensor y = embedding(weight, indices);
  return adapter ? add(y, adapter->rows(indices)) : y;
}

Tensor Embedding::project(const Tensor& x) const {
  Tensor y = linear(x, weight);
  return adapter ? add(y, adapter->forward(x)) : y;
}

}  // namespace ag::nn
