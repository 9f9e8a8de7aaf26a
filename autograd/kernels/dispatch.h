// Internal: calls a templated lambda with the C++ type of a runtime dtype.
//   dispatch_floating(t.dtype(), "exp", [&]<class T>() { ... });
// bfloat16 reaches only dispatch_all (element moves: copies, gathers, fills, printing; T = bf16).
// Kernels that compute take float32 copies of bfloat16 operands (compute_dtype, in_compute) and
// round their result (kernels/bf16.h); a kernel that has not been taught to gets a DtypeError.
#pragma once

#include "autograd/dtype.h"
#include "autograd/error.h"

namespace ag::kernels {

template <class F>
decltype(auto) dispatch_floating(Dtype t, const char* op, F&& f) {
  switch (t) {
    case Dtype::float32:
      return f.template operator()<float>();
    case Dtype::float64:
      return f.template operator()<double>();
    case Dtype::bfloat16:
      fail<DtypeError>("{}: no bfloat16 kernel; convert with .to(float32) first", op);
    default:
      fail<DtypeError>("{}: expected a float32 or float64 tensor, got {}", op, dtype_name(t));
  }
}

template <class F>
decltype(auto) dispatch_numeric(Dtype t, const char* op, F&& f) {
  switch (t) {
    case Dtype::float32:
      return f.template operator()<float>();
    case Dtype::float64:
      return f.template operator()<double>();
    case Dtype::int64:
      return f.template operator()<int64_t>();
    case Dtype::bfloat16:
      fail<DtypeError>("{}: no bfloat16 kernel; convert with .to(float32) first", op);
    default:
      fail<DtypeError>("{}: not defined for {} tensors", op, dtype_name(t));
  }
}

template <class F>
decltype(auto) dispatch_all(Dtype t, const char* /*op*/, F&& f) {
  switch (t) {
    case Dtype::float32:
      return f.template operator()<float>();
    case Dtype::float64:
      return f.template operator()<double>();
    case Dtype::int64:
      return f.template operator()<int64_t>();
    case Dtype::boolean:
      return f.template operator()<bool>();
    case Dtype::bfloat16:
      return f.template operator()<bf16>();
  }
  return f.template operator()<float>();
}

}  // namespace ag::kernels
