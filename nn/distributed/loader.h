// DistributedLoader: each rank's shard of every epoch's shuffled order, in mini-batches.
//
// Every rank builds the same permutation of the N samples (same seed, reshuffled each epoch as
// DataLoader does) and takes its own contiguous block of it: rank r of W gets positions
// [r * S, (r + 1) * S) with S = ceil(N / W) samples per rank. The blocks are disjoint and, when W
// divides N, every sample is used exactly once per epoch. When it does not, the shards must still
// have equal sizes (every rank has to run the same number of steps, or the others would wait in an
// all-reduce forever), so the short final shard is made whole:
//   - pad (default): the order is extended by its own first W*S - N entries, so up to W - 1
//     samples are seen twice in that epoch (different ones each epoch);
//   - drop_uneven: S = floor(N / W) and the last N - W*S samples of the order are skipped that
//     epoch (at most W - 1).
// Within its shard each rank iterates mini-batches of batch_size (per rank: the global batch is
// batch_size * W); drop_last drops a final incomplete batch, as in DataLoader.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/data/dataset.h"

namespace ag::nn::distributed {

struct DistributedLoaderOptions {
  int64_t batch_size = 32;  // per rank
  bool shuffle = true;
  uint64_t seed = 0;  // must be the same on every rank
  bool drop_last = false;
  bool drop_uneven = false;  // false: pad the short final shard; true: drop the remainder
  // -1: this process's rank and the world size (from MPI; 0 of 1 without it).
  int rank = -1;
  int world_size = -1;
};

class DistributedLoader {
 public:
  // ValueError for a non-positive batch size, a world size < 1, a rank outside [0, world size),
  // or (drop_uneven) fewer samples than ranks.
  DistributedLoader(const TensorDataset& data, const DistributedLoaderOptions& options);

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  // Samples of this rank per epoch (the same on every rank).
  int64_t shard_size() const;
  int64_t batches_per_epoch() const;
  const TensorDataset& dataset() const { return data_; }

  // The sample indices of this rank for the next epoch (advances the shuffle like begin()).
  Tensor next_epoch_indices();

  class Iterator {
   public:
    Iterator(const DistributedLoader* loader, Tensor indices, int64_t pos)
        : l_(loader), indices_(indices), pos_(pos) {}
    std::vector<Tensor> operator*() const;
    Iterator& operator++();
    bool operator!=(const Iterator& o) const { return pos_ != o.pos_; }

   private:
    const DistributedLoader* l_;
    Tensor indices_;
    int64_t pos_;
  };
  // Each pass is one epoch.
  Iterator begin();
  Iterator end() const;

 private:
  TensorDataset data_;
  DistributedLoaderOptions options_;
  int rank_ = 0, world_ = 1;
  Generator gen_;
  int64_t stop_ = 0;
};

}  // namespace ag::nn::distributed
