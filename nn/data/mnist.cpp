#include "nn/data/mnist.h"

#include <filesystem>

#include "nn/io/idx.h"

namespace ag::nn {

TensorDataset read_idx_dataset(const std::string& images_path, const std::string& labels_path,
                               bool flatten) {
  Tensor images = read_idx_images(images_path, flatten);
  Tensor labels = read_idx_labels(labels_path);
  if (images.shape()[0] != labels.shape()[0])
    fail<IOError>("read_idx_dataset: count mismatch: '{}' has {} images but '{}' has {} labels",
                  images_path, images.shape()[0], labels_path, labels.shape()[0]);
  return TensorDataset(images, labels);
}

std::pair<TensorDataset, TensorDataset> load_mnist(const std::string& dir, bool flatten) {
  auto find = [&](const std::string& name) {
    std::filesystem::path plain = std::filesystem::path(dir) / name;
    std::filesystem::path gz = std::filesystem::path(dir) / (name + ".gz");
    std::error_code ec;
    if (std::filesystem::is_regular_file(plain, ec)) return plain.string();
    if (std::filesystem::is_regular_file(gz, ec)) return gz.string();
    fail<IOError>("load_mnist: '{}' has neither '{}' nor '{}.gz'", dir, name, name);
  };
  TensorDataset train =
      read_idx_dataset(find("train-images-idx3-ubyte"), find("train-labels-idx1-ubyte"), flatten);
  TensorDataset test =
      read_idx_dataset(find("t10k-images-idx3-ubyte"), find("t10k-labels-idx1-ubyte"), flatten);
  return {train, test};
}

}  // namespace ag::nn
