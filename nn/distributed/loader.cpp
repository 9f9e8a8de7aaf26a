#include "nn/distributed/loader.h"

#include <algorithm>

#include "nn/distributed/distributed.h"

namespace ag::nn::distributed {

DistributedLoader::DistributedLoader(const TensorDataset& data,
                                     const DistributedLoaderOptions& options)
    : data_(data), options_(options), gen_(options.seed) {
  rank_ = options.rank >= 0 ? options.rank : distributed::rank();
  world_ = options.world_size >= 0 ? options.world_size : distributed::world_size();
  if (options.batch_size <= 0)
    fail<ValueError>("DistributedLoader: batch_size must be positive, got {}", options.batch_size);
  if (world_ < 1) fail<ValueError>("DistributedLoader: world size must be >= 1, got {}", world_);
  if (rank_ < 0 || rank_ >= world_)
    fail<ValueError>("DistributedLoader: rank {} is not in [0, {})", rank_, world_);
  if (options.drop_uneven && data.size() < world_)
    fail<ValueError>(
        "DistributedLoader: {} samples for {} ranks: with drop_uneven some ranks would get none",
        data.size(), world_);
  if (data.size() == 0) fail<ValueError>("DistributedLoader: empty dataset");
}

int64_t DistributedLoader::shard_size() const {
  int64_t n = data_.size();
  return options_.drop_uneven ? n / world_ : (n + world_ - 1) / world_;
}

int64_t DistributedLoader::batches_per_epoch() const {
  int64_t s = shard_size(), b = options_.batch_size;
  return options_.drop_last ? s / b : (s + b - 1) / b;
}

Tensor DistributedLoader::next_epoch_indices() {
  const int64_t n = data_.size(), s = shard_size();
  Tensor order = options_.shuffle ? randperm(n, &gen_) : arange(n, int64);
  if (s * world_ > n) {  // pad: repeat the start of the order
    int64_t extra = s * world_ - n;
    std::vector<Tensor> parts = {order};
    while (extra > 0) {
      int64_t take = std::min(extra, n);
      parts.push_back(slice(order, 0, 0, take));
      extra -= take;
    }
    order = cat(parts, 0);
  }
  return slice(order, 0, rank_ * s, (rank_ + 1) * s).contiguous();
}

DistributedLoader::Iterator DistributedLoader::begin() {
  Tensor indices = next_epoch_indices();
  int64_t s = indices.size(0), b = options_.batch_size;
  stop_ = options_.drop_last ? (s / b) * b : s;
  return Iterator(this, indices, 0);
}

DistributedLoader::Iterator DistributedLoader::end() const {
  return Iterator(this, Tensor(), stop_);
}

std::vector<Tensor> DistributedLoader::Iterator::operator*() const {
  int64_t e = std::min(pos_ + l_->options_.batch_size, l_->stop_);
  return l_->data_.batch(slice(indices_, 0, pos_, e));
}

DistributedLoader::Iterator& DistributedLoader::Iterator::operator++() {
  pos_ = std::min(pos_ + l_->options_.batch_size, l_->stop_);
  return *this;
}

}  // namespace ag::nn::distributed
