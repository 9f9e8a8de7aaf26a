// Datasets of tensors and a mini-batch loader. The article's three regimes of gradient descent are
// just the batch size: full batch (batch_size = dataset size), single sample (1), mini-batch (m).
#pragma once

#include <memory>
#include <vector>

#include "autograd/autograd.h"

namespace ag::nn {

// Samples along axis 0 of a set of tensors with the same first size (e.g. inputs and labels).
class TensorDataset {
 public:
  explicit TensorDataset(std::vector<Tensor> tensors);
  TensorDataset(Tensor inputs, Tensor targets)
      : TensorDataset(std::vector<Tensor>{inputs, targets}) {}
  int64_t size() const { return size_; }
  const std::vector<Tensor>& tensors() const { return tensors_; }
  // The samples at the given int64 indices, one tensor per field.
  std::vector<Tensor> batch(const Tensor& indices) const;
  // Samples [begin, end) (no copy: slices).
  std::vector<Tensor> range(int64_t begin, int64_t end) const;
  // Two datasets: the first (1 - fraction) and the last `fraction` of the samples (in order).
  std::pair<TensorDataset, TensorDataset> split(double fraction) const;

 private:
  std::vector<Tensor> tensors_;
  int64_t size_ = 0;
};

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;  // reshuffles each epoch from this seed
};

// Iterates mini-batches of a dataset: `for (auto batch : loader) { batch[0], batch[1] ... }`
// (each batch is made on the fly and returned by value).
// Each pass over the loader is one epoch, reshuffled (if shuffle) by the loader's generator.
class DataLoader {
 public:
  DataLoader(const TensorDataset& data, const LoaderOptions& options);
  int64_t batches_per_epoch() const;
  const TensorDataset& dataset() const { return data_; }
  const LoaderOptions& options() const { return options_; }

  class Iterator {
   public:
    Iterator(const DataLoader* loader, Tensor order, int64_t pos)
        : l_(loader), order_(order), pos_(pos) {}
    std::vector<Tensor> operator*() const;
    Iterator& operator++();
    bool operator!=(const Iterator& o) const { return pos_ != o.pos_; }

   private:
    const DataLoader* l_;
    Tensor order_;
    int64_t pos_;
  };
  Iterator begin();
  Iterator end() const;

 private:
  TensorDataset data_;
  LoaderOptions options_;
  Generator gen_;
  int64_t stop_ = 0;  // index where the current epoch ends
};

}  // namespace ag::nn
