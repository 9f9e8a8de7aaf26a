// The IDX file format (nn/io) of the MNIST data set (and of Fashion-MNIST, KMNIST, EMNIST...).
//
// Layout (sizes big-endian):
//   bytes 0-1  zero
//   byte  2    element type: 0x08 = unsigned byte (the only one used by these data sets)
//   byte  3    number of dimensions d
//   4 * d      the size of each dimension (u32)
//   then       the elements, row-major
// Images: magic 0x00000803, dimensions [count, rows, cols] (any count and image size).
// Labels: magic 0x00000801, dimension [count].
//
// Files may be gzip-compressed (train-images-idx3-ubyte.gz as distributed); plain and compressed
// files are read by the same functions when the library is built with zlib.
// Every problem (missing file, wrong magic, truncated data, extra bytes, image and label counts
// that differ) raises an IOError naming the path and what is wrong.
#pragma once

#include <string>

#include "autograd/tensor.h"

namespace ag::nn {

// Images as float32 [count, rows * cols] with pixels scaled to [0, 1] (byte / 255), or
// [count, rows, cols] if !flatten.
Tensor read_idx_images(const std::string& path, bool flatten = true);

// Labels as int64 [count].
Tensor read_idx_labels(const std::string& path);

// Writers of the same format (tests, exporting a synthetic data set for other tools);
// gzip-compressed when `gzip` (IOError if the library has no zlib). images: [count, rows, cols],
// values in [0, 1] (stored as round(255 * x), clamped) or int64 bytes.
void write_idx_images(const std::string& path, const Tensor& images, bool gzip = false);
// labels: int64 [count] with values in [0, 255].
void write_idx_labels(const std::string& path, const Tensor& labels, bool gzip = false);

}  // namespace ag::nn
