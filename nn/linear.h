// Linear: y = x W^T + b.   x [..., in] -> y [..., out]; W [out, in], b [out].
// Initialised as PyTorch does: W ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt(5)),
// b ~ U(-1/sqrt(in), 1/sqrt(in)).
//
// A Linear can carry a LoRA adapter (nn/lora.h): y = x W^T + b + (alpha / r) x A^T B^T.
#pragma once

#include <memory>

#include "nn/lora.h"
#include "nn/module.h"

namespace ag::nn {

class Linear : public LoRAHost {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  // relu(forward(x)), as one op (ag::linear_relu) when no adapter is attached. Sequential calls it
  // for a Linear followed by a ReLU.
  Tensor forward_relu(const Tensor& x);
  std::string type_name() const override { return "Linear"; }

  int64_t in_features, out_features;
  Tensor weight;
  Tensor bias;  // undefined without bias

 protected:
  Tensor& adapted_weight() override { return weight; }
};

// A Linear with bias whose weight is drawn from N(0, std) and bias set to 0 (GPT-2's
// initialisation), after Linear's own initialisation has drawn from `gen` (so the generator's
// sequence is the same as constructing a Linear and re-initialising it).
std::shared_ptr<Linear> normal_linear(int64_t in, int64_t out, double std, Generator* gen);

}  // namespace ag::nn
