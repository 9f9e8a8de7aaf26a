// Conversion between Tensor and xtensor's containers (copies; a Tensor owns its storage).
//
//   xt::xarray<double> a = {{1, 2}, {3, 4}};
//   ag::Tensor t = ag::from_xarray(a);          // float64, shape [2, 2]
//   xt::xarray<double> b = ag::to_xarray<double>(t * 2.0);
//
// T must match the tensor's dtype (float, double, int64_t or bool); a mismatch raises DtypeError.
#pragma once

#include <algorithm>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.h"

namespace ag {

template <class T>
Tensor from_xarray(const xt::xarray<T>& a) {
  Shape s;
  if (a.dimension() > static_cast<size_t>(kMaxDims))
    fail<ShapeError>("from_xarray: {} axes, at most {} supported", a.dimension(), kMaxDims);
  for (size_t d : a.shape()) s.push_back(static_cast<int64_t>(d));
  Tensor t = Tensor::empty(s, dtype_of<T>::value);
  std::copy(a.begin(), a.end(), t.data<T>());  // xarray iterates row-major
  return t;
}

template <class T>
xt::xarray<T> to_xarray(const Tensor& t) {
  if (dtype_of<T>::value != t.dtype())
    fail<DtypeError>("to_xarray: tensor has dtype {}, asked for {}", dtype_name(t.dtype()),
                     dtype_name(dtype_of<T>::value));
  std::vector<size_t> shape(t.shape().begin(), t.shape().end());
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  Tensor c = t.detach().contiguous();
  std::copy(c.data<T>(), c.data<T>() + c.numel(), a.begin());
  return a;
}

}  // namespace ag
