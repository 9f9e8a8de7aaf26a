// Dropout, Embedding and Identity (LayerNorm is in nn/normalization.h).
#pragma once

#include <memory>

#include "nn/lora.h"
#include "nn/module.h"

namespace ag::nn {

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

// Inverted dropout, active in training mode only: y = x * mask / (1 - p). Has its own generator,
// seeded at construction (from the default generator unless a seed is given).
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Dropout(double p, uint64_t seed);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  std::vector<Generator*> own_generators() override { return {&generator}; }
  double p;
  Generator generator;
};

// Embedding table [num_embeddings, dim], rows ~ N(0, 1) as in PyTorch. forward(int64 indices [...])
// -> [..., dim]; backward scatter-adds into the rows used. With a LoRA adapter (nn/lora.h) the
// table is E + (alpha / r) B A, in the lookup and in project().
class Embedding : public LoRAHost {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, Generator* gen = nullptr);
  Tensor forward(const Tensor& indices) override;
  // The table as an output projection tied to it: x [..., dim] -> x E^T [..., num_embeddings]
  // (a GPT's logits), adapter included.
  Tensor project(const Tensor& x) const;
  std::string type_name() const override { return "Embedding"; }
  int64_t num_embeddings, dim;
  Tensor weight;

 protected:
  Tensor& adapted_weight() override { return weight; }
};

}  // namespace ag::nn
