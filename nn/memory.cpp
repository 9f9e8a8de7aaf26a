#include "nn/memory.h"

#include <sys/resource.h>

#include <algorithm>

namespace ag::nn {

namespace {
int64_t live() { return static_cast<int64_t>(memory_stats().live_storage_bytes); }
}  // namespace

int64_t tensor_bytes(const Tensor& t) {
  return t.defined() ? t.numel() * static_cast<int64_t>(itemsize(t.dtype())) : 0;
}

int64_t peak_resident_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

void StepMemory::before_forward() { base_ = live(); }

void StepMemory::after_forward() { activations_ = std::max(activations_, live() - base_); }

void StepMemory::after_backward(const std::vector<Tensor>& params) {
  int64_t n = 0;
  for (const Tensor& p : params) n += tensor_bytes(p.grad());
  gradients_ = std::max(gradients_, n);
}

MemorySplit StepMemory::split(const std::vector<Tensor>& weights, const Optimizer& opt) const {
  MemorySplit s;
  for (const Tensor& p : weights) s.weights += tensor_bytes(p);
  for (const auto& [name, t] : opt.state_dict().tensors) s.optimizer_state += tensor_bytes(t);
  s.gradients = gradients_;
  s.activations = activations_;
  s.peak = peak_resident_bytes();
  return s;
}

}  // namespace ag::nn
