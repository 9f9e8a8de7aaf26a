// LoRA (low-rank adaptation): a frozen weight W [out, in] gains a trainable low-rank update,
// W + (alpha / r) B A, with A [r, in] random and B [out, r] zero, so an adapted layer starts out
// computing exactly what it did. Only A and B train; merging folds (alpha / r) B A into W.
//   Linear:    y = x W^T + b + (alpha / r) x A^T B^T
//   Embedding: the table E [num, dim] is W (out = num, in = dim): row i becomes
//              E[i] + (alpha / r) B[i] A, and a tied output projection x E^T (the GPT's head) gains
//              (alpha / r) x A^T B^T, so adapting a tied embedding adapts the head with it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"

namespace ag::nn {

class LoRAAdapter : public Module {
 public:
  LoRAAdapter(int64_t in, int64_t out, int64_t rank, double alpha, Generator* gen = nullptr);
  // (alpha / r) x A^T B^T: x [..., in] -> [..., out]
  Tensor forward(const Tensor& x) override;
  // Rows of the update (alpha / r) B A picked by int64 indices [...] -> [..., in] (an embedding's
  // lookup); d/dB scatter-adds into the rows used, d/dA = (alpha / r) B[indices]^T g.
  Tensor rows(const Tensor& indices) const;
  std::string type_name() const override { return "LoRAAdapter"; }
  // The update it adds to W: (alpha / r) B A, [out, in].
  Tensor delta_weight() const;
  int64_t rank;
  double scale;
  Tensor A, B;
};

// A module whose weight W [out, in] can carry a LoRA adapter (Linear, Embedding): the adapter is
// registered as child "lora", so its parameters are named "<module>.lora.A" / ".lora.B".
class LoRAHost : public Module {
 public:
  // Adds an adapter of this rank and alpha, in W's dtype; ValueError if one is already there or
  // the rank is not in [1, min(out, in)].
  void add_adapter(int64_t rank, double alpha, Generator* gen = nullptr);
  // Folds the adapter into the weight (W += (alpha / r) B A) and removes it; no-op without one.
  void merge_adapter();
  bool has_adapter() const { return adapter != nullptr; }
  // The adapted weight's shape, [out, in].
  Shape weight_shape() { return adapted_weight().shape(); }
  std::shared_ptr<LoRAAdapter> adapter;

 protected:
  // The weight the adapter updates, [out, in].
  virtual Tensor& adapted_weight() = 0;
};

// LoRA over a whole model.
struct LoRAConfig {
  int64_t rank = 8;
  double alpha = 16.0;
  // Module names (dotted, glob) of the Linear and Embedding layers to adapt. The default: the
  // attention and MLP projections of a GPT; add "wte" for its token embedding and tied head.
  std::vector<std::string> targets = {"*.attn.qkv", "*.attn.proj", "*.mlp.fc", "*.mlp.proj"};
  uint64_t seed = 0;
};
// Freezes every parameter of `model`, then adds trainable adapters to the matching Linear and
// Embedding layers. Returns how many layers were adapted (ValueError if none match).
int64_t apply_lora(Module& model, const LoRAConfig& config);
// Folds every adapter into its base weight and removes it; parameters are unfrozen again.
void merge_lora(Module& model);
// The adapter parameters alone (names ending in ".lora.A" / ".lora.B"), for saving adapters.
StateDict lora_state_dict(const Module& model);
// Puts adapters saved by lora_state_dict back onto a model without adapters (the same base model,
// e.g. loaded again later): freezes every parameter, adds to each module named by a
// "<module>.lora.A" / "<module>.lora.B" pair an adapter of A's rank with this alpha, and copies A
// and B into it. Returns how many layers were adapted. ValueError naming the tensor for an entry
// that is not such a pair, a module that is missing, not a Linear or Embedding, or already
// adapted, or shapes that do not fit the module's weight; nothing is changed then.
int64_t load_lora(Module& model, const StateDict& adapters, double alpha);

}  // namespace ag::nn
