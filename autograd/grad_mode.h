// Grad mode: whether ops record onto the tape. Per thread: two threads can train two models at
// once, and a NoGradGuard in one does not affect the other.
#pragma once

#include "autograd/dtype.h"

namespace ag {

bool is_grad_enabled();
void set_grad_enabled(bool enabled);

// RAII: no recording in this scope (optimizer updates, evaluation).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(is_grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// RAII: recording on in this scope, even inside a NoGradGuard.
class EnableGradGuard {
 public:
  EnableGradGuard() : prev_(is_grad_enabled()) { set_grad_enabled(true); }
  ~EnableGradGuard() { set_grad_enabled(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

// Autocast (mixed precision), per thread: inside an AutocastGuard(bfloat16), the matrix-product
// ops (matmul, linear, and what is built on them) take their float32 operands as bfloat16 and give
// bfloat16 results. The conversions are recorded (.to()), so the gradients of float32 parameters
// (master weights) come back in float32 and the optimizer updates them in float32; what these ops
// save for backward is bfloat16 (half the activation memory). The other ops follow their inputs'
// dtypes: bfloat16 in, bfloat16 out, computed in float32; a bfloat16 operand meeting a float32 one
// is promoted to float32; cross_entropy of bfloat16 logits is float32. ag::checkpoint recomputes
// under the autocast state of its forward. float64 operands are never converted.
//   { AutocastGuard bf16(bfloat16); loss = cross_entropy(model.forward(x), y); }
//   loss.backward();                                          // outside: no difference
Dtype autocast_dtype();                // float32 when autocast is off
void set_autocast_dtype(Dtype dtype);  // float32 (off) or bfloat16; ValueError otherwise

class AutocastGuard {
 public:
  explicit AutocastGuard(Dtype dtype = Dtype::bfloat16) : prev_(autocast_dtype()) {
    set_autocast_dtype(dtype);
  }
  ~AutocastGuard() { set_autocast_dtype(prev_); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  Dtype prev_;
};

}  // namespace ag
