// nn::distributed: data-parallel training over MPI (Open MPI). Built only with -Dmpi=enabled (or
// auto, when MPI is found); nothing in autograd/ depends on it. See docs/distributed.md.
//
// Every process ("rank") holds a full copy of the model, trains on its own shard of each batch, and
// the gradients are averaged across ranks before each optimizer step, so all copies stay identical:
//
//   int main(int argc, char** argv) {
//     return nn::distributed::run_or_abort("train", [&] {
//       nn::distributed::Environment mpi(argc, argv);            // MPI_Init ... MPI_Finalize
//       auto model = make_model();
//       nn::distributed::DataParallel ddp(*model);               // rank 0's weights everywhere
//       nn::distributed::DistributedLoader loader(data, {.batch_size = 32});
//       nn::SGD opt(model->parameters(), {.lr = 0.1});
//       for (auto batch : loader) {
//         opt.zero_grad();
//         nn::cross_entropy((*model)(batch[0]), batch[1]).backward();  // buckets sent as ready
//         ddp.average_gradients();                               // wait: .grad = mean over ranks
//         opt.step();
//       }
//       return 0;
//     });
//   }
//
// Without an Environment (MPI not initialised) every function here behaves as for one process:
// rank 0 of 1, reductions return their input, barriers return at once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nn/module.h"
#include "nn/train.h"

namespace ag::nn::distributed {

// ---- the process group ----

// Initialises MPI for the life of the object and finalises it at the end (RAII); one per process.
// If MPI is already initialised (by the caller) it is left to the caller. During the unwinding of
// an exception, MPI is not finalised (finalising waits for the other ranks): catch the exception
// with run_or_abort, which stops every rank.
class Environment {
 public:
  Environment();
  Environment(int& argc, char**& argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

 private:
  void init(int* argc, char*** argv);
  bool owns_ = false;
};

// MPI is initialised and not yet finalised.
bool initialized();
// This process's rank in MPI_COMM_WORLD (0 without MPI).
int rank();
// Number of ranks (1 without MPI).
int world_size();
// rank() == 0: the rank that logs and writes checkpoints.
inline bool is_root() { return rank() == 0; }
// Waits until every rank has called it.
void barrier();
// Whether this process was started by mpirun/mpiexec (Open MPI's or a PMI launcher's environment
// variables are set), so programs can turn data parallelism on without a flag.
bool launched_by_mpirun();

// Runs `body` and returns its result. If it throws, prints "<program>: rank <r> of <n>: error:
// <what>" ("<program>: error: <what>" alone) to stderr and, when several ranks run, stops all of
// them with MPI_Abort (exit status 1),
// so a rank that fails never leaves the others waiting in a collective; with one process it
// returns 1.
int run_or_abort(const std::string& program, const std::function<int()>& body);

// ---- collectives (every rank must call them, in the same order) ----

// Overwrites `t` (any dtype) with its value on `root`. ValueError on every rank if the shapes or
// dtypes differ across ranks (the differing ranks name both).
void broadcast(Tensor& t, int root = 0);
// Sums a float32/float64 tensor across ranks, in place (blocking, one MPI_Allreduce); DtypeError
// for other dtypes.
void all_reduce_sum_(Tensor& t);
// Sums (or takes the maximum of) numbers across ranks; the result is the same on every rank.
std::vector<double> all_reduce_sum(std::vector<double> values);
double all_reduce_sum(double value);
double all_reduce_max(double value);

// Broadcasts every parameter and buffer of `model` from rank 0, so all ranks start identical.
// First checks that every rank has the same tensors (names, dtypes, shapes, which require grad): on
// a mismatch every rank throws ValueError; the ranks that differ from rank 0 name the tensors.
void broadcast_parameters(Module& model);

// The largest |p - p on rank 0| over all parameters and ranks (the same on every rank); 0 when the
// copies are identical.
double max_parameter_difference(const Module& model);

// ---- metrics ----

// An evaluation over each rank's own part of a data set, combined: loss and accuracy weighted by
// the number of samples of each rank, samples summed.
Evaluation all_reduce(const Evaluation& local);
// The mean of per-sample values across ranks: (sum of local_sum) / (sum of local_count).
double global_mean(double local_sum, double local_count);

}  // namespace ag::nn::distributed
