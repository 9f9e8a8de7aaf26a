// Internal: how computing kernels take bfloat16 operands. bfloat16 is a storage type only: a kernel
// reads a float32 copy of a bfloat16 operand, computes and accumulates in float32, and rounds its
// result back to bfloat16 (to nearest, ties to even). The copies are the kernel's scratch, not
// recorded: the op saves and returns bfloat16 tensors, so saved activations keep their half size.
//
//   Tensor x = in_compute(x_in);                     // float32 if x_in is bfloat16, else x_in
//   Tensor out = ... float32 or float64 kernel on x ...;
//   return to_storage(out, x_in.dtype());            // bfloat16 again if x_in was
#pragma once

#include "autograd/dtype.h"
#include "autograd/kernels/copy.h"

namespace ag::kernels {

// The dtype a kernel computes in for operands stored as d.
inline Dtype compute_dtype(Dtype d) { return d == Dtype::bfloat16 ? Dtype::float32 : d; }

// t converted to `d` without recording (t itself when it already has that dtype).
inline Tensor cast(const Tensor& t, Dtype d) {
  if (t.dtype() == d) return t;
  Tensor out = Tensor::empty(t.shape(), d);
  copy_into(out, t);
  return out;
}

// t, or a float32 copy of it when it is stored in bfloat16.
inline Tensor in_compute(const Tensor& t) {
  return t.defined() && t.dtype() == Dtype::bfloat16 ? cast(t, Dtype::float32) : t;
}

// A kernel's result r for operands stored as `storage`: rounded to bfloat16 when that is it.
inline Tensor to_storage(const Tensor& r, Dtype storage) {
  return storage == Dtype::bfloat16 && r.defined() && r.dtype() == Dtype::float32
             ? cast(r, Dtype::bfloat16)
             : r;
}

// kernel(operands...) with bfloat16 operands given as float32 copies, its result rounded to
// bfloat16 when `storage` (the op's result dtype) is bfloat16.
template <class K, class... T>
Tensor computed(Dtype storage, K&& kernel, const T&... operands) {
  return to_storage(kernel(in_compute(operands)...), storage);
}

}  // namespace ag::kernels
