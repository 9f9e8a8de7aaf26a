// Internal: calls a templated lambda with the C++ type of a runtime dtype.
//   dispatch_floating(t.dtype(), "exp", [&]<class T>() { ... });
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
  }
  return f.template operator()<float>();
}

}  // namespace ag::kernels
