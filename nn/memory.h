// Where a training step's memory goes: the accounting behind `gpt train/finetune --memory-report`
// and `bench gpt2-finetune`'s memory line, in bytes of tensor storage (ag::memory_stats).
//
//   nn::StepMemory mem;
//   for (...) {
//     mem.before_forward();
//     Tensor loss = model.loss(x, y);
//     mem.after_forward();             // saved activations: the live bytes the forward added
//     loss.backward();
//     mem.after_backward(trainable);   // gradients: the bytes of the trainable parameters' .grad
//     opt.step();
//   }
//   nn::MemorySplit s = mem.split(model.parameters(), opt);
//
// Weights and optimizer state are the bytes of those tensors; gradients and saved activations the
// largest seen. The peak resident memory (getrusage) less these four is the workspace and the
// rest: the kernels' temporaries, the buffers the engine keeps for reuse, code and libraries.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/tensor.h"
#include "nn/optim/optimizer.h"

namespace ag::nn {

// The bytes of a tensor's elements (0 if undefined).
int64_t tensor_bytes(const Tensor& t);
// The process's peak resident set size so far, in bytes (getrusage).
int64_t peak_resident_bytes();

struct MemorySplit {
  int64_t peak = 0, weights = 0, gradients = 0, optimizer_state = 0, activations = 0;
  // peak less the four others.
  int64_t rest() const { return peak - weights - gradients - optimizer_state - activations; }
};

class StepMemory {
 public:
  void before_forward();
  void after_forward();
  void after_backward(const std::vector<Tensor>& params);
  int64_t gradients() const { return gradients_; }
  int64_t activations() const { return activations_; }
  // The split now: the given weights, the optimizer's state, the largest gradients and saved
  // activations seen, and the peak resident memory.
  MemorySplit split(const std::vector<Tensor>& weights, const Optimizer& opt) const;

 private:
  int64_t base_ = 0, gradients_ = 0, activations_ = 0;
};

}  // namespace ag::nn
