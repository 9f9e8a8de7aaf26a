// Single tensors as NumPy .npy files (nn/io).
//
// save_npy writes a C-ordered .npy (format 1.0, by xtensor) of any tensor (float32 "<f4", float64
// "<f8", int64 "<i8", bool "|b1"), atomically (nn/io/atomic_file.h). load_npy reads those four
// dtypes from format 1.0, 2.0 or 3.0 files, C or Fortran order (returned row-major). The header is
// parsed and the size its shape announces is checked against the file's length before anything
// is allocated: IOError naming the path for a missing, truncated or malformed file (or one with
// bytes after its data), or another dtype.
#pragma once

#include <string>

#include "autograd/tensor.h"

namespace ag::nn {

void save_npy(const std::string& path, const Tensor& t);
Tensor load_npy(const std::string& path);

}  // namespace ag::nn
