// Data-parallel training of the mnist example's MLP over MPI: every rank holds the model, trains on
// its own shard of each epoch, and the gradients are averaged across ranks before each step.
//
//   mpirun -np 2 <builddir>/examples/train_ddp [--epochs 3] [--batch 32] [--lr 0.1]
//          [--momentum 0.9] [--hidden 128] [--train-size 4000] [--data DIR] [--seed 0]
//          [--bucket-mb 25] [--save CKPT] [--resume CKPT]
//   (as root: mpirun --allow-run-as-root --oversubscribe -np 2 ...)
//
// --batch is per rank: one step sees batch x ranks images. Without --data it trains on synthetic
// stroke-drawn digits (--train-size of them, quick); with --data, on MNIST's IDX files in DIR.
// --save writes a checkpoint (model and optimizer) from rank 0 at the end; --resume loads one on
// every rank before training. Only rank 0 prints: the loss of every epoch (the mean over all
// ranks' samples), then, as its last line, `params max abs difference across ranks: <value>`,
// which is 0 when every rank ended with the same weights.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "nn/distributed/data_parallel.h"
#include "nn/distributed/distributed.h"
#include "nn/distributed/loader.h"
#include "nn/nn.h"

using namespace ag;
namespace dist = ag::nn::distributed;

namespace {

struct Settings {
  int64_t epochs = 3, batch = 32, hidden = 128, train_size = 4000;
  double lr = 0.1, momentum = 0.9, bucket_mb = 25;
  uint64_t seed = 0;
  std::string data, save, resume;
};

int64_t integer(const std::string& opt, const std::string& v, int64_t min) {
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < min)
    fail<ValueError>("{} expects an integer >= {}, got '{}'", opt, min, v);
  return x;
}

double number(const std::string& opt, const std::string& v) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(x >= 0))
    fail<ValueError>("{} expects a number >= 0, got '{}'", opt, v);
  return x;
}

Settings parse(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    std::string opt = argv[i];
    if (i + 1 >= argc) fail<ValueError>("unknown option or missing value: '{}'", opt);
    std::string v = argv[++i];
    if (opt == "--epochs")
      s.epochs = integer(opt, v, 1);
    else if (opt == "--batch")
      s.batch = integer(opt, v, 1);
    else if (opt == "--hidden")
      s.hidden = integer(opt, v, 1);
    else if (opt == "--train-size")
      s.train_size = integer(opt, v, 2);
    else if (opt == "--lr")
      s.lr = number(opt, v);
    else if (opt == "--momentum")
      s.momentum = number(opt, v);
    else if (opt == "--bucket-mb")
      s.bucket_mb = number(opt, v);
    else if (opt == "--seed")
      s.seed = static_cast<uint64_t>(integer(opt, v, 0));
    else if (opt == "--data")
      s.data = v;
    else if (opt == "--save")
      s.save = v;
    else if (opt == "--resume")
      s.resume = v;
    else
      fail<ValueError>("unknown option '{}'", opt);
  }
  return s;
}

int train(const Settings& s) {
  const bool root = dist::is_root();
  const int world = dist::world_size();

  // The same data on every rank (each takes its own shard of it per epoch).
  nn::TensorDataset train_all = s.data.empty() ? nn::synthetic_digits(s.train_size, /*seed=*/1)
                                               : nn::load_mnist(s.data).first;
  auto [train, val] = train_all.split(0.1);
  const int64_t inputs = train.tensors()[0].size(1);

  Generator init(s.seed);
  auto model = nn::make_mlp({inputs, s.hidden, 10}, "relu", 0.0, &init);
  nn::SGD opt(model->parameters(), {.lr = s.lr, .momentum = s.momentum});
  if (!s.resume.empty()) nn::load_checkpoint(s.resume, *model, &opt);  // every rank reads it
  dist::DataParallel ddp(*model, {.bucket_mb = s.bucket_mb});  // rank 0's weights everywhere
  dist::DistributedLoader loader(train, {.batch_size = s.batch, .seed = s.seed + 1});
  if (root)
    fmt::print(
        "{} ranks: MLP {}-{}-10, {} training images ({} per rank per epoch), batch {} per rank "
        "({} per step), SGD lr {} momentum {}, {} gradient bucket(s)\n",
        world, inputs, s.hidden, train.size(), loader.shard_size(), s.batch, s.batch * world, s.lr,
        s.momentum, ddp.num_buckets());

  using Clock = std::chrono::steady_clock;
  for (int64_t epoch = 1; epoch <= s.epochs; ++epoch) {
    auto t0 = Clock::now();
    ddp.reset_stats();
    double loss_sum = 0, samples = 0;
    for (auto batch : loader) {
      opt.zero_grad();
      Tensor loss = nn::cross_entropy((*model)(batch[0]), batch[1]);
      loss.backward();          // full buckets start their all-reduce from here
      ddp.average_gradients();  // the rest, then wait: .grad = mean over ranks
      opt.step();
      loss_sum += loss.item() * static_cast<double>(batch[0].size(0));
      samples += static_cast<double>(batch[0].size(0));
    }
    double loss = dist::global_mean(loss_sum, samples);
    // Validation: each rank evaluates its part of the held-out images, combined over ranks.
    int64_t n = val.size();
    nn::TensorDataset part(val.range(n * dist::rank() / world, n * (dist::rank() + 1) / world));
    nn::Evaluation v =
        dist::all_reduce(part.size() > 0 ? nn::evaluate(*model, part) : nn::Evaluation{});
    double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (root)
      fmt::print(
          "epoch {}/{} loss {:.4f} val accuracy {:.4f} ({:.2f} s, waiting for all-reduce {:.2f} "
          "ms per step)\n",
          epoch, s.epochs, loss, v.accuracy, seconds,
          1e3 * ddp.stats().wait_seconds / static_cast<double>(ddp.stats().steps));
  }

  if (!s.save.empty()) {
    if (root) nn::save_checkpoint(s.save, *model, &opt, {{"ranks", std::to_string(world)}});
    dist::barrier();  // the file is complete before any rank may read it
    if (root) fmt::print("saved {}\n", s.save);
  }
  double diff = dist::max_parameter_difference(*model);
  if (root) fmt::print("params max abs difference across ranks: {}\n", diff);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dist::run_or_abort("train_ddp", [&] {
    dist::Environment mpi(argc, argv);
    return train(parse(argc, argv));
  });
}
