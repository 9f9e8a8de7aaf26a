// Step time of the mlp784 and gpt-mini workloads (WORKLOADS.md) trained data-parallel, and the
// share of it spent on gradient averaging (docs/distributed.md):
//
//   mpirun -np R <builddir>/bench/bench_ddp mlp784|gpt-mini [--steps N] [--batch B] [--bucket-mb M]
//                                                 [--no-overlap]
//
// Every rank runs the workload's step on its own batch of B samples (default: the workload's batch,
// 64 for mlp784 and 16 for gpt-mini, so R ranks train on R times the data per step; pass half of
// it for the same global batch as one process) followed by DataParallel::average_gradients(). With
// one rank, no DataParallel is made: the plain step of bench/bench. 5 warm-up steps, N timed (all
// ranks start each step together after a barrier, not timed). Rank 0 prints the medians of: the
// step, the time in average_gradients() (what the all-reduce adds after backward: waiting for
// buckets still in flight and for the slower rank), and, measured separately after the steps, one
// blocking all-reduce of all the gradients alone. Last line: `<workload> ranks <R> median <X> us`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "nn/distributed/data_parallel.h"
#include "nn/distributed/distributed.h"
#include "nn/nn.h"

using namespace ag;
namespace dist = ag::nn::distributed;

namespace {

using Clock = std::chrono::steady_clock;
double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Workload {
  std::shared_ptr<nn::Module> model;
  std::unique_ptr<nn::Optimizer> opt;
  std::function<Tensor()> loss;
};

Workload mlp784(int64_t batch) {
  Workload w;
  manual_seed(0);
  w.model = nn::make_mlp({784, 256, 256, 10}, "relu");
  w.opt = std::make_unique<nn::SGD>(w.model->parameters(), nn::SGDOptions{.lr = 0.01});
  Generator g(1 + static_cast<uint64_t>(dist::rank()));  // each rank its own samples
  Tensor x = normal({batch, 784}, 0, 1, float32, &g);
  Tensor y = randint(0, 10, {batch}, &g);
  auto* m = w.model.get();
  w.loss = [m, x, y] { return nn::cross_entropy(m->forward(x), y); };
  return w;
}

Workload gpt_mini(int64_t batch) {
  Workload w;
  nn::GPTConfig c;  // vocab 256, 4 layers, 4 heads, d 128, context 64, GELU tanh, no dropout
  auto model = std::make_shared<nn::GPT>(c);
  nn::AdamWOptions o;
  o.lr = 3e-4;
  o.weight_decay = 0.1;
  w.opt = std::make_unique<nn::AdamW>(model->parameters(), o);
  Generator g(1 + static_cast<uint64_t>(dist::rank()));
  Tensor data = randint(0, c.vocab_size, {batch, c.context + 1}, &g);
  Tensor x = slice(data, 1, 0, c.context).contiguous();
  Tensor y = slice(data, 1, 1, c.context + 1).contiguous();
  auto* m = model.get();
  w.loss = [m, x, y] { return m->loss(x, y); };
  w.model = model;
  return w;
}

int run(int argc, char** argv) {
  std::string workload = argc > 1 ? argv[1] : "";
  int steps = 50;
  int64_t batch = workload == "gpt-mini" ? 16 : 64;
  bool overlap = true;
  double bucket_mb = 25;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc)
      steps = std::stoi(argv[++i]);
    else if (a == "--batch" && i + 1 < argc)
      batch = std::stoll(argv[++i]);
    else if (a == "--bucket-mb" && i + 1 < argc)
      bucket_mb = std::stod(argv[++i]);
    else if (a == "--no-overlap")
      overlap = false;
    else
      fail<ValueError>("unknown option '{}'", a);
  }
  if (steps < 1 || batch < 1) fail<ValueError>("--steps and --batch must be positive");
  Workload w;
  if (workload == "mlp784")
    w = mlp784(batch);
  else if (workload == "gpt-mini")
    w = gpt_mini(batch);
  else
    fail<ValueError>(
        "usage: bench_ddp mlp784|gpt-mini [--steps N] [--batch B] [--bucket-mb M] [--no-overlap]");

  const int ranks = dist::world_size();
  std::unique_ptr<dist::DataParallel> ddp;
  if (ranks > 1)
    ddp = std::make_unique<dist::DataParallel>(
        *w.model, dist::DataParallelOptions{.bucket_mb = bucket_mb, .overlap = overlap});
  std::vector<double> step_us, avg_us;
  for (int i = 0; i < 5 + steps; ++i) {
    dist::barrier();
    auto t0 = Clock::now();
    w.opt->zero_grad();
    w.loss().backward();
    auto t1 = Clock::now();
    if (ddp) ddp->average_gradients();
    double a = us_since(t1);
    w.opt->step();
    double s = us_since(t0);
    if (i >= 5) {
      step_us.push_back(s);
      avg_us.push_back(a);
    }
  }
  // One blocking all-reduce of all gradients, alone (no compute to overlap with or wait for).
  std::vector<double> alone_us;
  if (ranks > 1) {
    int64_t n = 0;
    for (const Tensor& p : w.model->parameters()) n += p.requires_grad() ? p.numel() : 0;
    Tensor flat = zeros({n});
    for (int i = 0; i < 5 + steps; ++i) {
      dist::barrier();
      auto t0 = Clock::now();
      dist::all_reduce_sum_(flat);
      if (i >= 5) alone_us.push_back(us_since(t0));
    }
  }
  double step = median(step_us), avg = median(avg_us), alone = median(alone_us);
  double slowest = dist::all_reduce_max(step);
  if (dist::is_root()) {
    std::printf("%s: %d rank(s), batch %lld per rank, %d steps%s\n", workload.c_str(), ranks,
                static_cast<long long>(batch), steps,
                ranks > 1 ? (overlap ? ", buckets posted during backward"
                                     : ", buckets posted after backward")
                          : "");
    if (ranks > 1) {
      std::printf("  %d bucket(s); median average_gradients() %.0f us (%.1f%% of the step)\n",
                  static_cast<int>(ddp->num_buckets()), avg, 100 * avg / step);
      std::printf(
          "  median blocking all-reduce of all gradients alone: %.0f us (%.1f%% of the step)\n",
          alone, 100 * alone / step);
      std::printf("  slowest rank's median step %.0f us\n", slowest);
    }
    std::printf("%s ranks %d median %.0f us\n", workload.c_str(), ranks, step);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dist::run_or_abort("bench_ddp", [&] {
    dist::Environment mpi(argc, argv);
    return run(argc, argv);
  });
}
