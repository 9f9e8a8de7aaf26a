#include "nn/data/dataset.h"

#include <cmath>

namespace ag::nn {

TensorDataset::TensorDataset(std::vector<Tensor> tensors) : tensors_(std::move(tensors)) {
  if (tensors_.empty()) fail<ValueError>("TensorDataset: no tensors");
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (t.dim() == 0)
      fail<ShapeError>("TensorDataset: tensor {} is a scalar; samples go along axis 0", i);
    if (t.shape()[0] != tensors_[0].shape()[0])
      fail<ShapeError>("TensorDataset: tensor {} has {} samples ({}) but tensor 0 has {} ({})", i,
                       t.shape()[0], t.shape(), tensors_[0].shape()[0], tensors_[0].shape());
  }
  size_ = tensors_[0].shape()[0];
}

std::vector<Tensor> TensorDataset::batch(const Tensor& indices) const {
  std::vector<Tensor> r;
  for (const Tensor& t : tensors_) r.push_back(index_select(t, 0, indices));
  return r;
}

std::vector<Tensor> TensorDataset::range(int64_t begin, int64_t end) const {
  std::vector<Tensor> r;
  for (const Tensor& t : tensors_) r.push_back(slice(t, 0, begin, end));
  return r;
}

std::pair<TensorDataset, TensorDataset> TensorDataset::split(double fraction) const {
  if (!(fraction >= 0 && fraction <= 1))
    fail<ValueError>("TensorDataset::split: fraction {} is outside [0, 1]", fraction);
  int64_t cut = size_ - static_cast<int64_t>(std::llround(fraction * static_cast<double>(size_)));
  return {TensorDataset(range(0, cut)), TensorDataset(range(cut, size_))};
}

DataLoader::DataLoader(const TensorDataset& data, const LoaderOptions& o)
    : data_(data), options_(o), gen_(o.seed) {
  if (o.batch_size <= 0)
    fail<ValueError>("DataLoader: batch_size must be positive, got {}", o.batch_size);
}

int64_t DataLoader::batches_per_epoch() const {
  int64_t n = data_.size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

DataLoader::Iterator DataLoader::begin() {
  int64_t n = data_.size();
  Tensor order = options_.shuffle ? randperm(n, &gen_) : arange(n, int64);
  stop_ = options_.drop_last ? (n / options_.batch_size) * options_.batch_size : n;
  return Iterator(this, order, stop_ == 0 ? stop_ : 0);
}

DataLoader::Iterator DataLoader::end() const { return Iterator(this, Tensor(), stop_); }

std::vector<Tensor> DataLoader::Iterator::operator*() const {
  int64_t e = std::min(pos_ + l_->options_.batch_size, l_->stop_);
  return l_->data_.batch(slice(order_, 0, pos_, e));
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  pos_ = std::min(pos_ + l_->options_.batch_size, l_->stop_);
  return *this;
}

}  // namespace ag::nn
