// LoRA (low-rank adaptation): a frozen Linear layer y = x W^T + b gains a trainable low-rank
// update, y = x W^T + b + (alpha / r) x A^T B^T, with A [r, in] random and B [out, r] zero, so an
// adapted layer starts out computing exactly what it did. Only A and B train; merging folds
// (alpha / r) B A into W.
#pragma once

#include <string>
#include <vector>

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

// LoRA over a whole model.
struct LoRAConfig {
  int64_t rank = 8;
  double alpha = 16.0;
  // Module names (dotted, glob) of the Linear layers to adapt.
  std::vector<std::string> targets = {"*.attn.qkv", "*.attn.proj", "*.mlp.fc", "*.mlp.proj"};
  uint64_t seed = 0;
};
// Freezes every parameter of `model`, then adds trainable adapters to the matching Linear layers.
// Returns how many layers were adapted (ValueError if none match).
int64_t apply_lora(Module& model, const LoRAConfig& config);
// Folds every adapter into its base weight and removes it; parameters are unfrozen again.
void merge_lora(Module& model);
// The adapter parameters alone (names ending in ".lora.A" / ".lora.B"), for saving adapters.
StateDict lora_state_dict(const Module& model);

}  // namespace ag::nn
