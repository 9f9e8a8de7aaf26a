// Linear: y = x W^T + b.   x [..., in] -> y [..., out]; W [out, in], b [out].
// Initialised as PyTorch does: W ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt(5)),
// b ~ U(-1/sqrt(in), 1/sqrt(in)).
//
// A Linear can carry a LoRA adapter (low-rank adaptation): y = x W^T + b + (alpha / r) x A^T B^T
// with A [r, in] random and B [out, r] zero, so an adapted layer starts out computing exactly what
// it did.
#pragma once

#include <memory>

#include "nn/module.h"

namespace ag::nn {

class LoRAAdapter : public Module {
 public:
  LoRAAdapter(int64_t in, int64_t out, int64_t rank, double alpha, Generator* gen = nullptr);
  // (alpha / r) x A^T B^T
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LoRAAdapter"; }
  // The update it adds to W: (alpha / r) B A, [out, in].
  Tensor delta_weight() const;
  int64_t rank;
  double scale;
  Tensor A, B;
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }

  // Adds a LoRA adapter (registered as child "lora"); ValueError if one is already there.
  void add_adapter(int64_t rank, double alpha, Generator* gen = nullptr);
  // Folds the adapter into the weight (W += (alpha / r) B A) and removes it.
  void merge_adapter();
  bool has_adapter() const { return adapter != nullptr; }

  int64_t in_features, out_features;
  Tensor weight;
  Tensor bias;  // undefined without bias
  std::shared_ptr<LoRAAdapter> adapter;
};

}  // namespace ag::nn
