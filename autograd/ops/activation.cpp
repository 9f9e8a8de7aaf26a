#include "autograd/ops/activation.h"

#include "autograd/kernels/dispatch.h"
#include "autograd/kernels/loops.h"
#include "autograd/node.h"
#include "autograd/ops/elementwise.h"

namespace ag {

Tensor relu(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  kernels::dispatch_floating(x.dtype(), "relu", [&]<class T>() {
    kernels::map<T, T>(out, [](T v) { return v > T(0) ? v : T(0); }, x);
  });
  if (any_requires_grad({&x}))
    record("relu", {&x}, out, {Save{out, true}},
           [](Node& n, const Tensor& g) -> TensorList {
             Tensor y = n.saved(0);
             return {where(gt(y, zeros(Shape{}, y.dtype())), g, zeros(Shape{}, g.dtype()))};
           },
           [](const TensorList& a) { return relu(a[0]); });
  return out;
}

}  // namespace ag
