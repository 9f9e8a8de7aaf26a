// nn::distributed, run by meson under `mpirun -np 2` (every case also passes on one process).
// Every rank runs every case; collectives inside a case are called by all ranks in the same order.
#define DOCTEST_CONFIG_IMPLEMENT
#include <numeric>
#include <set>

#include "gpt_fixture.h"
#include "nn/distributed/data_parallel.h"
#include "nn/distributed/distributed.h"
#include "nn/distributed/loader.h"
#include "nn/nn.h"
#include "support.h"

using namespace ag;
namespace dist = ag::nn::distributed;

namespace {

// A small classifier; `seed` sets its initial weights.
std::shared_ptr<nn::Sequential> make_model(uint64_t seed) {
  Generator g(seed);
  return nn::make_mlp({12, 16, 16, 4}, "tanh", 0.0, &g);
}

// The same samples on every rank.
nn::TensorDataset make_data(int64_t n) {
  Generator g(7);
  Tensor x = normal({n, 12}, 0, 1, float32, &g);
  Tensor y = randint(0, 4, {n}, &g);
  return nn::TensorDataset(x, y);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  return max(abs(a.to(float64) - b.to(float64))).item();
}

double max_param_diff(const nn::Module& a, const nn::Module& b) {
  auto pa = a.parameters(), pb = b.parameters();
  double d = 0;
  for (size_t i = 0; i < pa.size(); ++i) d = std::max(d, max_abs_diff(pa[i], pb[i]));
  return d;
}

// Trains `steps` SGD steps data-parallel (each rank on its own part of each global batch) and, on
// every rank, one process on the whole global batches; returns the largest parameter difference.
double ddp_vs_single_process(double bucket_mb, bool overlap, double* moved = nullptr) {
  const int world = dist::world_size(), rank = dist::rank();
  const int64_t b = 5, steps = 6;
  nn::TensorDataset data = make_data(b * world * steps);
  // Different initial weights on each rank: DataParallel must start them all from rank 0's.
  auto model = make_model(100 + rank);
  dist::DataParallel ddp(*model, {.bucket_mb = bucket_mb, .overlap = overlap});
  auto single = make_model(100);
  auto start = make_model(100);
  nn::SGD opt(model->parameters(), {.lr = 0.5, .momentum = 0.9});
  nn::SGD single_opt(single->parameters(), {.lr = 0.5, .momentum = 0.9});
  for (int64_t step = 0; step < steps; ++step) {
    int64_t first = step * b * world;
    auto local = data.range(first + rank * b, first + (rank + 1) * b);
    opt.zero_grad();
    nn::cross_entropy((*model)(local[0]), local[1]).backward();
    ddp.average_gradients();
    opt.step();

    auto global = data.range(first, first + b * world);
    single_opt.zero_grad();
    nn::cross_entropy((*single)(global[0]), global[1]).backward();
    single_opt.step();
  }
  if (moved) *moved = max_param_diff(*single, *start);
  return max_param_diff(*model, *single);
}

}  // namespace

TEST_CASE("two ranks with batch b reach the parameters of one process with batch 2b") {
  double moved = 0;
  double d = ddp_vs_single_process(25.0, true, &moved);
  INFO("ranks " << dist::world_size() << ", max parameter difference " << d);
  CHECK(moved > 0.1);  // training did change the weights
  CHECK(d < 2e-6);
  // Many small buckets (down to one tensor each), posted from the hooks.
  CHECK(ddp_vs_single_process(0.0002, true) < 2e-6);
}

TEST_CASE("DataParallel starts every rank from rank 0's weights and keeps them identical") {
  auto model = make_model(100 + dist::rank());
  if (dist::world_size() > 1) CHECK(dist::max_parameter_difference(*model) > 0);
  dist::DataParallel ddp(*model);
  CHECK(dist::max_parameter_difference(*model) == 0);
  auto reference = make_model(100);
  CHECK(max_param_diff(*model, *reference) == 0);
  // Different data on each rank, same averaged gradient: still identical after steps.
  nn::TensorDataset data = make_data(40);
  nn::SGD opt(model->parameters(), {.lr = 0.3});
  for (int step = 0; step < 3; ++step) {
    auto batch = data.range(10 * dist::rank(), 10 * dist::rank() + 10);
    opt.zero_grad();
    nn::cross_entropy((*model)(batch[0]), batch[1]).backward();
    ddp.average_gradients();
    opt.step();
  }
  CHECK(dist::max_parameter_difference(*model) == 0);
}

TEST_CASE("the bucketed all-reduce posted during backward equals a plain per-tensor all-reduce") {
  const int rank = dist::rank(), world = dist::world_size();
  nn::TensorDataset data = make_data(64);
  auto batch = data.range(16 * rank, 16 * rank + 16);
  for (double bucket_mb : {25.0, 0.0015, 0.0002}) {
    for (bool overlap : {true, false}) {
      CAPTURE(bucket_mb);
      CAPTURE(overlap);
      auto model = make_model(3);
      dist::DataParallel ddp(*model, {.bucket_mb = bucket_mb, .overlap = overlap});
      model->zero_grad();
      nn::cross_entropy((*model)(batch[0]), batch[1]).backward();
      // The plain way: one blocking all-reduce per gradient tensor, then divide.
      std::vector<Tensor> plain;
      for (const Tensor& p : model->parameters()) {
        Tensor g = p.grad().clone();
        dist::all_reduce_sum_(g);
        g.mul_(1.0 / world);
        plain.push_back(g);
      }
      ddp.average_gradients();
      auto params = model->parameters();
      for (size_t i = 0; i < params.size(); ++i)
        CHECK(max_abs_diff(params[i].grad(), plain[i]) == 0);
      const dist::SyncStats& st = ddp.stats();
      CHECK(st.steps == 1);
      CHECK(st.buckets_posted_early + st.buckets_posted_late == ddp.num_buckets());
      if (overlap) {
        // Every gradient arrived through a hook, so every bucket left during backward.
        CHECK(st.buckets_posted_early == ddp.num_buckets());
      } else {
        CHECK(st.buckets_posted_late == ddp.num_buckets());
      }
    }
  }
}

TEST_CASE("buckets: reverse parameter order, capped in size, one per parameter at the smallest") {
  auto model = make_model(3);  // parameters: 16*12, 16, 16*16, 16, 4*16, 4 floats
  dist::DataParallel one(*model, {.broadcast_parameters = false});
  CHECK(one.num_buckets() == 1);
  // 1200 bytes = 300 floats, last layer first: [4] + [4, 16] + [16] = 84 floats (+ 256 would
  // exceed 300), then [16, 16] + [16] = 272, then [16, 12] = 192.
  dist::DataParallel three(*model, {.bucket_mb = 0.0012, .broadcast_parameters = false});
  CHECK(three.bucket_sizes() == std::vector<int64_t>{3, 2, 1});
  dist::DataParallel each(*model, {.bucket_mb = 1e-6, .broadcast_parameters = false});
  CHECK(each.num_buckets() == 6);
  CHECK_THROWS_AS(dist::DataParallel(*model, {.bucket_mb = 0}), ValueError);
}

TEST_CASE("gradient accumulation: sync off for all but the last backward") {
  const int rank = dist::rank(), world = dist::world_size();
  nn::TensorDataset data = make_data(8 * world);
  auto model = make_model(5);
  dist::DataParallel ddp(*model);
  auto single = make_model(5);
  // Two micro-batches of 4 on each rank = one global batch of 8 * world, loss scaled by 1/2.
  model->zero_grad();
  ddp.set_sync(false);
  auto m0 = data.range(8 * rank, 8 * rank + 4);
  mul(nn::cross_entropy((*model)(m0[0]), m0[1]), 0.5).backward();
  ddp.set_sync(true);
  auto m1 = data.range(8 * rank + 4, 8 * rank + 8);
  mul(nn::cross_entropy((*model)(m1[0]), m1[1]), 0.5).backward();
  ddp.average_gradients();
  CHECK(ddp.stats().buckets_posted_early == 1);
  single->zero_grad();
  auto all = data.range(0, 8 * world);
  nn::cross_entropy((*single)(all[0]), all[1]).backward();
  auto p = model->parameters(), q = single->parameters();
  for (size_t i = 0; i < p.size(); ++i) CHECK(max_abs_diff(p[i].grad(), q[i].grad()) < 1e-6);

  // Two backward passes with sync on and no average_gradients() in between: a clear error.
  model->zero_grad();
  auto x = data.range(0, 4);
  nn::cross_entropy((*model)(x[0]), x[1]).backward();
  CHECK_THROWS_WITH_PARTS(nn::cross_entropy((*model)(x[0]), x[1]).backward(), ValueError,
                          "second backward", "set_sync(false)");
  ddp.average_gradients();  // completes the buckets in flight
}

TEST_CASE(
    "activation checkpointing in DataParallel: the same gradients, buckets sent in backward") {
  // A GPT with dropout, every block checkpointed, against the same model without: the gradients
  // averaged across ranks are bit-identical, and every bucket still leaves during backward (the
  // gradient-ready hooks fire from the checkpoint nodes' recomputed backward).
  nn::GPTConfig c =
      test::gpt_config({.layers = 2, .d_model = 16, .context = 8, .seed = 4, .dropout = 0.1});
  Generator g(30 + static_cast<uint64_t>(dist::rank()));
  Tensor x = randint(0, 256, {2, 8}, &g), y = randint(0, 256, {2, 8}, &g);
  std::vector<std::vector<float>> grads[2];
  for (int ckpt : {0, 1}) {
    nn::GPT model(c);
    model.set_checkpoint_activations(ckpt == 1);
    model.train();
    dist::DataParallel ddp(model, {.bucket_mb = 0.002, .overlap = true});
    model.zero_grad();
    model.loss(x, y).backward();
    ddp.average_gradients();
    CHECK(ddp.num_buckets() > 2);
    CHECK(ddp.stats().buckets_posted_early == ddp.num_buckets());
    for (const Tensor& p : model.parameters()) grads[ckpt].push_back(p.grad().to_vector<float>());
  }
  CHECK(grads[0] == grads[1]);
}

TEST_CASE("mismatched parameter shapes across ranks stop every rank at the broadcast") {
  if (dist::world_size() < 2) return;
  Generator g(1);
  auto model = nn::make_mlp({6, dist::rank() == 1 ? 9 : 8, 2}, "relu", 0.0, &g);
  if (dist::rank() == 1)
    CHECK_THROWS_WITH_PARTS(dist::DataParallel{*model}, ValueError, "rank 1 differ from rank 0",
                            "0.weight: float32 [9, 6] here, float32 [8, 6] on rank 0");
  else
    CHECK_THROWS_WITH_PARTS(dist::DataParallel{*model}, ValueError, "differ from rank 0's");
  Tensor t = zeros({dist::rank() + 2});
  CHECK_THROWS_WITH_PARTS(dist::broadcast(t), ValueError, "broadcast");
}

TEST_CASE("metrics: losses, accuracies and counts combine across ranks by sample count") {
  const int rank = dist::rank(), world = dist::world_size();
  // Rank r evaluated r + 1 samples with loss r and accuracy 1 if r is even.
  nn::Evaluation local{static_cast<double>(rank), rank % 2 == 0 ? 1.0 : 0.0, rank + 1};
  nn::Evaluation all = dist::all_reduce(local);
  double n = 0, loss = 0, correct = 0;
  for (int r = 0; r < world; ++r) {
    n += r + 1;
    loss += r * (r + 1.0);
    correct += r % 2 == 0 ? r + 1.0 : 0.0;
  }
  CHECK(all.samples == static_cast<int64_t>(n));
  CHECK(all.loss == doctest::Approx(loss / n));
  CHECK(all.accuracy == doctest::Approx(correct / n));
  CHECK(dist::global_mean(2.0 * (rank + 1), rank + 1) == doctest::Approx(2.0));
  CHECK(dist::all_reduce_max(rank) == world - 1);
  CHECK(dist::all_reduce_sum(1.0) == world);
}

// ---- DistributedLoader (no communication: ranks given explicitly) ----

std::vector<int64_t> epoch_of(int rank, int world, int64_t n, dist::DistributedLoaderOptions o) {
  o.rank = rank;
  o.world_size = world;
  dist::DistributedLoader loader(nn::TensorDataset(arange(n, int64), arange(n, int64)), o);
  std::vector<int64_t> seen;
  for (auto batch : loader) {
    CHECK(batch[0].size(0) <= o.batch_size);
    for (int64_t v : batch[0].to_vector<int64_t>()) seen.push_back(v);
  }
  return seen;
}

TEST_CASE("DistributedLoader: disjoint shards of one shuffled order, every sample once") {
  for (int world : {1, 2, 3, 4}) {
    const int64_t n = 24;
    std::vector<int64_t> all;
    for (int r = 0; r < world; ++r) {
      auto s = epoch_of(r, world, n, {.batch_size = 5, .seed = 9});
      CHECK(static_cast<int64_t>(s.size()) == n / world);
      all.insert(all.end(), s.begin(), s.end());
    }
    std::vector<int64_t> sorted = all;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> expected(n);
    std::iota(expected.begin(), expected.end(), 0);
    CHECK(sorted == expected);
    // Shuffled: not the identity order.
    if (world == 1) CHECK(all != expected);
  }
}

TEST_CASE("DistributedLoader: same seed, same order on every rank; a new order each epoch") {
  dist::DistributedLoaderOptions o{.batch_size = 4, .seed = 3, .rank = 0, .world_size = 2};
  nn::TensorDataset d(arange(20, int64), arange(20, int64));
  dist::DistributedLoader a(d, o), b(d, o);
  Tensor e1 = a.next_epoch_indices(), e2 = a.next_epoch_indices();
  CHECK(e1.to_vector<int64_t>() == b.next_epoch_indices().to_vector<int64_t>());
  CHECK(e1.to_vector<int64_t>() != e2.to_vector<int64_t>());
  // Without shuffling, rank 1 of 2 gets the second half in order.
  o.shuffle = false;
  o.rank = 1;
  CHECK(dist::DistributedLoader(d, o).next_epoch_indices().to_vector<int64_t>() ==
        std::vector<int64_t>{10, 11, 12, 13, 14, 15, 16, 17, 18, 19});
}

TEST_CASE("DistributedLoader: a short final shard is padded (default) or dropped") {
  const int world = 4;
  const int64_t n = 10;  // 10 = 4 * 2 + 2
  std::vector<int64_t> padded, dropped;
  for (int r = 0; r < world; ++r) {
    auto p = epoch_of(r, world, n, {.batch_size = 2, .seed = 1});
    auto d = epoch_of(r, world, n, {.batch_size = 2, .seed = 1, .drop_uneven = true});
    CHECK(p.size() == 3);  // ceil(10 / 4): every rank the same number of samples and steps
    CHECK(d.size() == 2);  // floor(10 / 4)
    padded.insert(padded.end(), p.begin(), p.end());
    dropped.insert(dropped.end(), d.begin(), d.end());
  }
  std::set<int64_t> distinct_padded(padded.begin(), padded.end());
  CHECK(distinct_padded.size() == n);  // every sample at least once, 2 of them twice
  CHECK(padded.size() == 12);
  std::set<int64_t> distinct_dropped(dropped.begin(), dropped.end());
  CHECK(distinct_dropped.size() == dropped.size());  // none twice, 2 left out
  CHECK(dropped.size() == 8);
  dist::DistributedLoader l(nn::TensorDataset({arange(n, int64)}),
                            {.batch_size = 2, .drop_last = true, .rank = 0, .world_size = 4});
  CHECK(l.batches_per_epoch() == 1);
}

TEST_CASE("DistributedLoader rejects bad settings") {
  nn::TensorDataset d({arange(3, int64)});
  CHECK_THROWS_AS(dist::DistributedLoader(d, {.batch_size = 0, .rank = 0, .world_size = 1}),
                  ValueError);
  CHECK_THROWS_WITH_PARTS(dist::DistributedLoader(d, {.rank = 2, .world_size = 2}), ValueError,
                          "rank 2");
  CHECK_THROWS_WITH_PARTS(
      dist::DistributedLoader(d, {.drop_uneven = true, .rank = 0, .world_size = 4}), ValueError,
      "3 samples for 4 ranks");
}

int main(int argc, char** argv) {
  dist::Environment mpi(argc, argv);
  doctest::Context context(argc, argv);
  int failed = context.run();
  // A failing rank must not leave the others waiting: agree on the result.
  double any = dist::all_reduce_max(failed ? 1.0 : 0.0);
  return any > 0 ? 1 : 0;
}
