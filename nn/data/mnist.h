// MNIST-style data sets from IDX files (the format: nn/io/idx.h).
#pragma once

#include <string>
#include <utility>

#include "nn/data/dataset.h"

namespace ag::nn {

// Images and labels of one split as a dataset (inputs, targets); IOError if their counts differ.
TensorDataset read_idx_dataset(const std::string& images_path, const std::string& labels_path,
                               bool flatten = true);

// MNIST's four files in a directory, by MNIST's names, each plain or with ".gz":
//   train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
//   t10k-labels-idx1-ubyte.
// Returns (train, test). IOError naming the file names tried if one is missing.
std::pair<TensorDataset, TensorDataset> load_mnist(const std::string& dir, bool flatten = true);

}  // namespace ag::nn
