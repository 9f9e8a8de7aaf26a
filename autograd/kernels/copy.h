// Internal: the element copy with dtype conversion behind to(), clone() and copy_().
#pragma once

#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"

namespace ag::kernels {

// dst[i] = src[i] converted to dst's dtype; src broadcast to dst's shape.
inline void copy_into(const Tensor& dst, const Tensor& src) {
  dispatch_all(dst.dtype(), "copy", [&]<class D>() {
    dispatch_all(src.dtype(), "copy", [&]<class S>() {
      map<D, S>(
          dst, [](S x) { return static_cast<D>(x); }, src);
    });
  });
}

}  // namespace ag::kernels
