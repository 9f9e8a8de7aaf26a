// DataParallel: averages a model's gradients across ranks after each backward, with the gradients
// packed into a few large buckets and each bucket's all-reduce started while backward still runs.
//
// At construction the trainable parameters (those that require grad) are assigned to buckets in
// reverse registration order, which is about the order backward finishes them (the last layer
// first); a bucket holds parameters of one dtype up to `bucket_mb` megabytes (a larger parameter
// gets a bucket of its own). Each parameter gets a gradient-ready hook
// (ag::register_grad_ready_hook): when backward has finished the parameter's gradient, the hook
// copies it into its bucket, and when a bucket is complete its non-blocking MPI_Iallreduce is
// posted (buckets are posted in bucket order on every rank, as MPI requires). average_gradients()
// posts what is left, waits for all buckets and writes the averages (sum / world size) back into
// each parameter's .grad.
//
// Rules:
// - Call average_gradients() once after each backward (or after the last backward of an
//   accumulation, see set_sync) and before the optimizer step, on every rank.
// - For gradient accumulation over several backward passes, turn sync off for all but the last:
//   the hooks then do nothing and .grad accumulates locally as usual.
// - A parameter whose hook did not run on a rank (no gradient reached it) contributes its current
//   .grad there, or zero if it has none; every rank gets the average.
// - ValueError if a second backward finishes a parameter's gradient while sync is on and before
//   average_gradients() (the bucket may already be on its way).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "nn/module.h"

namespace ag::nn::distributed {

struct DataParallelOptions {
  double bucket_mb = 25.0;           // bucket capacity in megabytes (1e6 bytes), as PyTorch DDP
  bool broadcast_parameters = true;  // start from rank 0's parameters and buffers
  bool overlap = true;  // post each bucket from the hooks as soon as it is full (false: all of
                        // them in average_gradients(), after backward; for comparisons)
};

// Where the time of gradient averaging went (summed since construction or reset_stats()).
struct SyncStats {
  int64_t steps = 0;                 // average_gradients() calls
  int64_t buckets_posted_early = 0;  // posted from a hook, during backward
  int64_t buckets_posted_late = 0;   // posted in average_gradients()
  double hook_seconds = 0;           // in the hooks: copying gradients in, posting
  double wait_seconds = 0;           // in average_gradients(): posting the rest and waiting
  double copy_back_seconds = 0;      // in average_gradients(): averages back into .grad
};

class DataParallel {
 public:
  explicit DataParallel(Module& model, const DataParallelOptions& options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Completes the averaging of this step's gradients: every trainable parameter's .grad becomes
  // the mean over ranks of its local gradient. Blocks until all buckets are reduced.
  void average_gradients();

  // Off: backward accumulates .grad locally without communicating (gradient accumulation).
  void set_sync(bool on) { sync_ = on; }
  bool sync() const { return sync_; }

  int64_t num_buckets() const;
  // Number of parameters in each bucket, in bucket order.
  std::vector<int64_t> bucket_sizes() const;
  const SyncStats& stats() const { return stats_; }
  void reset_stats() { stats_ = SyncStats{}; }

 private:
  struct State;
  void on_grad_ready(size_t param);
  void post_ready_buckets();

  std::unique_ptr<State> state_;
  DataParallelOptions options_;
  bool sync_ = true;
  SyncStats stats_;
};

}  // namespace ag::nn::distributed
