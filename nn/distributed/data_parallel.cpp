#include "nn/distributed/data_parallel.h"

#include <fmt/format.h>
#include <mpi.h>

#include <chrono>
#include <exception>

#include "nn/distributed/distributed.h"

namespace ag::nn::distributed {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

struct DataParallel::State {
  struct Param {
    Tensor tensor;
    size_t bucket = 0;
    int64_t offset = 0;  // in the bucket's flat buffer, in elements
    bool ready = false;  // its gradient of this step is in the bucket
  };
  struct Bucket {
    Tensor flat;  // the gradients of its parameters, end to end
    std::vector<size_t> params;
    int64_t missing = 0;  // parameters not ready yet this step
    bool posted = false;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  std::vector<Param> params;
  std::vector<Bucket> buckets;
  size_t next_to_post = 0;  // buckets are posted in order, the same on every rank
  std::vector<GradReadyHandle> hooks;
  int world = 1;
};

DataParallel::DataParallel(Module& model, const DataParallelOptions& options)
    : state_(std::make_unique<State>()), options_(options) {
  if (!(options.bucket_mb > 0))
    fail<ValueError>("DataParallel: bucket_mb must be positive, got {}", options.bucket_mb);
  if (options.broadcast_parameters) broadcast_parameters(model);
  State& s = *state_;
  s.world = world_size();

  // Reverse registration order: backward finishes the last layers first.
  std::vector<Tensor> all = model.parameters();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const Tensor& p = *it;
    if (!p.requires_grad()) continue;
    if (!is_floating(p.dtype()))
      fail<DtypeError>("DataParallel: parameter of shape {} has dtype {}", p.shape(),
                       dtype_name(p.dtype()));
    s.params.push_back({p});
  }
  const double cap = options.bucket_mb * 1e6;
  std::vector<int64_t> sizes;  // elements per bucket
  Dtype dtype = float32;
  for (size_t i = 0; i < s.params.size(); ++i) {
    const Tensor& p = s.params[i].tensor;
    double bytes = static_cast<double>(p.numel() * static_cast<int64_t>(itemsize(p.dtype())));
    bool fits =
        !s.buckets.empty() && p.dtype() == dtype &&
        static_cast<double>(sizes.back() * static_cast<int64_t>(itemsize(dtype))) + bytes <= cap;
    if (!fits) {
      s.buckets.emplace_back();
      sizes.push_back(0);
      dtype = p.dtype();
    }
    s.params[i].bucket = s.buckets.size() - 1;
    s.params[i].offset = sizes.back();
    sizes.back() += p.numel();
    s.buckets.back().params.push_back(i);
  }
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    const Tensor& first = s.params[s.buckets[b].params[0]].tensor;
    if (sizes[b] > INT32_MAX)
      fail<ValueError>("DataParallel: a parameter of {} elements is too large for one all-reduce",
                       sizes[b]);
    s.buckets[b].flat = zeros({sizes[b]}, first.dtype());
    s.buckets[b].missing = static_cast<int64_t>(s.buckets[b].params.size());
  }
  for (size_t i = 0; i < s.params.size(); ++i)
    s.hooks.push_back(register_grad_ready_hook(s.params[i].tensor,
                                               [this, i](const Tensor&) { on_grad_ready(i); }));
}

DataParallel::~DataParallel() {
  // MPI may still write into the buffer of a bucket in flight. Normally (average_gradients() not
  // called after a backward) wait for it; while an exception unwinds, the other ranks may never
  // post their part, so waiting could hang: keep the buffers alive instead (run_or_abort stops the
  // process soon).
  bool in_flight = false;
  for (auto& b : state_->buckets) in_flight = in_flight || b.request != MPI_REQUEST_NULL;
  if (!in_flight || !initialized()) return;
  if (std::uncaught_exceptions() > 0) {
    auto* keep = new std::vector<Tensor>();  // deliberately never freed
    for (auto& b : state_->buckets) keep->push_back(b.flat);
    return;
  }
  for (auto& b : state_->buckets)
    if (b.request != MPI_REQUEST_NULL) MPI_Wait(&b.request, MPI_STATUS_IGNORE);
}

int64_t DataParallel::num_buckets() const { return static_cast<int64_t>(state_->buckets.size()); }

std::vector<int64_t> DataParallel::bucket_sizes() const {
  std::vector<int64_t> r;
  for (auto& b : state_->buckets) r.push_back(static_cast<int64_t>(b.params.size()));
  return r;
}

void DataParallel::on_grad_ready(size_t i) {
  if (!sync_) return;
  auto t0 = std::chrono::steady_clock::now();
  State& s = *state_;
  State::Param& p = s.params[i];
  State::Bucket& b = s.buckets[p.bucket];
  if (p.ready || b.posted)
    fail<ValueError>(
        "DataParallel: a second backward finished the gradient of a parameter of shape {} before "
        "average_gradients(); for gradient accumulation call set_sync(false) for all but the last "
        "backward",
        p.tensor.shape());
  {
    NoGradGuard ng;
    Tensor slot = b.flat.slice(0, p.offset, p.offset + p.tensor.numel());
    slot.copy_(p.tensor.grad().reshape({-1}));
  }
  p.ready = true;
  --b.missing;
  if (options_.overlap) post_ready_buckets();
  stats_.hook_seconds += seconds_since(t0);
}

void DataParallel::post_ready_buckets() {
  State& s = *state_;
  while (s.next_to_post < s.buckets.size() && s.buckets[s.next_to_post].missing == 0) {
    State::Bucket& b = s.buckets[s.next_to_post++];
    b.posted = true;
    ++stats_.buckets_posted_early;
    if (s.world == 1) continue;
    void* data = b.flat.dtype() == float32 ? static_cast<void*>(b.flat.data<float>())
                                           : static_cast<void*>(b.flat.data<double>());
    MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(b.flat.numel()),
                   b.flat.dtype() == float32 ? MPI_FLOAT : MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD,
                   &b.request);
  }
  // Open MPI advances non-blocking collectives only inside MPI calls: poke the ones in flight.
  if (s.world > 1)
    for (size_t k = 0; k < s.next_to_post; ++k)
      if (s.buckets[k].request != MPI_REQUEST_NULL) {
        int done = 0;
        MPI_Test(&s.buckets[k].request, &done, MPI_STATUS_IGNORE);
      }
}

void DataParallel::average_gradients() {
  auto t0 = std::chrono::steady_clock::now();
  State& s = *state_;
  // Post what the hooks did not: a parameter whose hook did not run (no gradient reached it in
  // the last backward, or sync was off) contributes its current .grad, or zero without one.
  int64_t early = stats_.buckets_posted_early;
  for (auto& p : s.params)
    if (!p.ready) {
      State::Bucket& b = s.buckets[p.bucket];
      NoGradGuard ng;
      Tensor slot = b.flat.slice(0, p.offset, p.offset + p.tensor.numel());
      Tensor g = p.tensor.grad();
      if (g.defined())
        slot.copy_(g.reshape({-1}));
      else
        slot.zero_();
      p.ready = true;
      --b.missing;
    }
  post_ready_buckets();
  int64_t late = stats_.buckets_posted_early - early;
  stats_.buckets_posted_early = early;
  stats_.buckets_posted_late += late;
  if (s.world > 1)
    for (auto& b : s.buckets) MPI_Wait(&b.request, MPI_STATUS_IGNORE);
  stats_.wait_seconds += seconds_since(t0);

  auto t1 = std::chrono::steady_clock::now();
  NoGradGuard ng;
  const double scale = 1.0 / static_cast<double>(s.world);
  for (auto& b : s.buckets) {
    if (s.world > 1) b.flat.mul_(scale);
    b.posted = false;
    b.missing = static_cast<int64_t>(b.params.size());
  }
  for (auto& p : s.params) {
    Tensor avg = s.buckets[p.bucket].flat.slice(0, p.offset, p.offset + p.tensor.numel());
    Tensor g = p.tensor.grad();
    if (g.defined() && g.is_contiguous() && !g.requires_grad()) {
      g.copy_(avg.reshape(g.shape()));
    } else {
      p.tensor.set_grad(avg.reshape(p.tensor.shape()).clone());
    }
    p.ready = false;
  }
  s.next_to_post = 0;
  ++stats_.steps;
  stats_.copy_back_seconds += seconds_since(t1);
}

}  // namespace ag::nn::distributed
