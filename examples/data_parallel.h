// Data parallelism for the mnist and gpt examples: the few calls they make into nn::distributed,
// or their one-process meaning when the build has no MPI (meson -Dmpi=disabled, or no Open MPI).
// A program written with nn::distributed directly is examples/train_ddp.cpp.
//
//   examples::DataParallel dp(wanted, argc, argv);  // wanted: --distributed, or run by mpirun
//   dp.attach(*model);                              // rank 0's weights everywhere, gradient hooks
//   ... backward ...; dp.average_gradients(); opt.step();
//   if (dp.root()) fmt::print(...);                 // only rank 0 prints and writes files
//   examples::Batches loader(dp, train, 32, seed);  // each rank its shard of every epoch
//   loader.epoch([&](const std::vector<ag::Tensor>& batch) { ... });
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "nn/nn.h"

#ifdef TAPEGRAD_HAVE_MPI
#include "nn/distributed/data_parallel.h"
#include "nn/distributed/distributed.h"
#include "nn/distributed/loader.h"
#endif

namespace examples {

class DataParallel {
 public:
  // With `wanted`, starts MPI (ag::ValueError if the build has no MPI); otherwise one process.
  DataParallel(bool wanted, int& argc, char**& argv) {
#ifdef TAPEGRAD_HAVE_MPI
    if (wanted) mpi_ = std::make_unique<ag::nn::distributed::Environment>(argc, argv);
#else
    (void)argc;
    (void)argv;
    if (wanted)
      ag::fail<ag::ValueError>(
          "--distributed: this build has no MPI (install libopenmpi-dev and configure with "
          "-Dmpi=enabled)");
#endif
  }

  // Whether this process was started by mpirun (then data parallelism is on without a flag).
  static bool launched_by_mpirun() {
#ifdef TAPEGRAD_HAVE_MPI
    return ag::nn::distributed::launched_by_mpirun();
#else
    return false;
#endif
  }

  bool on() const {
#ifdef TAPEGRAD_HAVE_MPI
    return static_cast<bool>(mpi_) || world() > 1;
#else
    return false;
#endif
  }
  int rank() const {
#ifdef TAPEGRAD_HAVE_MPI
    return ag::nn::distributed::rank();
#else
    return 0;
#endif
  }
  int world() const {
#ifdef TAPEGRAD_HAVE_MPI
    return ag::nn::distributed::world_size();
#else
    return 1;
#endif
  }
  bool root() const { return rank() == 0; }
  // Sends this process's standard output to /dev/null unless it is rank 0 (errors still show).
  void print_only_on_root() const {
    if (!root() && !std::freopen("/dev/null", "w", stdout))
      ag::fail<ag::IOError>("cannot redirect the output of rank {}", rank());
  }

  // Broadcasts the model from rank 0 and averages its gradients from now on (no-op alone).
  void attach(ag::nn::Module& model) {
#ifdef TAPEGRAD_HAVE_MPI
    if (on()) ddp_ = std::make_unique<ag::nn::distributed::DataParallel>(model);
#else
    (void)model;
#endif
  }
  // After backward, before the optimizer step: .grad = mean over ranks.
  void average_gradients() {
#ifdef TAPEGRAD_HAVE_MPI
    if (ddp_) ddp_->average_gradients();
#endif
  }
  // Gradient accumulation: communicate only on the last backward of a step.
  void set_sync(bool on) {
#ifdef TAPEGRAD_HAVE_MPI
    if (ddp_) ddp_->set_sync(on);
#else
    (void)on;
#endif
  }
  // sum over ranks of local_sum / sum over ranks of local_count.
  double mean(double local_sum, double local_count) const {
#ifdef TAPEGRAD_HAVE_MPI
    return ag::nn::distributed::global_mean(local_sum, local_count);
#else
    return local_count > 0 ? local_sum / local_count : NAN;
#endif
  }
  // This rank's contiguous part of a data set (all of it on one process).
  ag::nn::TensorDataset shard(const ag::nn::TensorDataset& d) const {
    int64_t n = d.size(), r = rank(), w = world();
    return ag::nn::TensorDataset(d.range(n * r / w, n * (r + 1) / w));
  }
  // nn::evaluate over each rank's shard, combined over ranks.
  ag::nn::Evaluation evaluate(ag::nn::Module& model, const ag::nn::TensorDataset& d) const {
    ag::nn::TensorDataset part = shard(d);
    ag::nn::Evaluation local;
    if (part.size() > 0) local = ag::nn::evaluate(model, part);
#ifdef TAPEGRAD_HAVE_MPI
    return ag::nn::distributed::all_reduce(local);
#else
    return local;
#endif
  }

  // Runs `body`; on an exception prints it (with the rank when several run) and returns 1, having
  // stopped every rank (MPI_Abort) so none waits for the failed one.
  static int run(const std::string& program, const std::function<int()>& body) {
#ifdef TAPEGRAD_HAVE_MPI
    return ag::nn::distributed::run_or_abort(program, body);
#else
    try {
      return body();
    } catch (const std::exception& e) {
      fmt::print(stderr, "{}: error: {}\n", program, e.what());
      return 1;
    }
#endif
  }

 private:
#ifdef TAPEGRAD_HAVE_MPI
  std::unique_ptr<ag::nn::distributed::Environment> mpi_;
  std::unique_ptr<ag::nn::distributed::DataParallel> ddp_;
#endif
};

// One epoch's mini-batches: nn::DataLoader on one process, each rank's shard of the same shuffled
// order (nn::distributed::DistributedLoader, short shards padded) when several run. `batch` is per
// rank.
class Batches {
 public:
  Batches(const DataParallel& dp, const ag::nn::TensorDataset& data, int64_t batch, uint64_t seed)
      : single_(data, {.batch_size = batch, .shuffle = true, .seed = seed}) {
#ifdef TAPEGRAD_HAVE_MPI
    if (dp.on())
      sharded_.emplace(
          data, ag::nn::distributed::DistributedLoaderOptions{.batch_size = batch, .seed = seed});
#else
    (void)dp;
#endif
  }
  int64_t batches_per_epoch() const {
#ifdef TAPEGRAD_HAVE_MPI
    if (sharded_) return sharded_->batches_per_epoch();
#endif
    return single_.batches_per_epoch();
  }
  // Runs step(batch) for every batch of the next epoch.
  template <class F>
  void epoch(F&& step) {
#ifdef TAPEGRAD_HAVE_MPI
    if (sharded_) {
      for (auto batch : *sharded_) step(batch);
      return;
    }
#endif
    for (auto batch : single_) step(batch);
  }

 private:
  ag::nn::DataLoader single_;
#ifdef TAPEGRAD_HAVE_MPI
  std::optional<ag::nn::distributed::DistributedLoader> sharded_;
#endif
};

}  // namespace examples
