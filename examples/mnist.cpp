// Trains an MLP classifier on MNIST (or any data set in MNIST's IDX files, any image size), or on a
// synthetic MNIST-like set when no data is given.
//
//   mnist [--data DIR] [--epochs 20] [--batch 32] [--lr 0.1] [--momentum 0.9] [--hidden 128]
//         [--val 0.1] [--seed 0] [--csv FILE] [--train-size 6000] [--test-size 1000]
//         [--distributed]
//
// DIR holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
// t10k-labels-idx1-ubyte (each may be gzip-compressed, with ".gz"). Pixels are scaled to [0, 1] and
// each image is flattened into one input vector. --hidden takes one size per hidden layer
// ("256,128"); each is followed by a ReLU. Training is SGD with momentum on mini-batches of the
// training images, with a held-out fraction (--val) of them evaluated after every epoch; the test
// images are evaluated once at the end. --csv writes the metrics of every epoch. Without --data, a
// synthetic set of stroke-drawn digits is generated (--train-size and --test-size images).
//
// Data-parallel over MPI with --distributed, or when started by mpirun (`mpirun -np 2 mnist`):
// every rank trains on its shard of each epoch with --batch images per step (a global batch of
// batch x ranks), gradients are averaged across ranks, losses and accuracies are combined over
// all ranks, and only rank 0 prints and writes the CSV. See docs/distributed.md.
//
// The last line printed is exactly "test accuracy <fraction>".
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli.h"
#include "data_parallel.h"
#include "nn/nn.h"

using namespace ag;

namespace {

struct Settings {
  std::string data;
  int64_t epochs = 20;
  int64_t batch = 32;
  double lr = 0.1;
  double momentum = 0.9;
  std::vector<int64_t> hidden = {128};
  double val = 0.1;
  uint64_t seed = 0;
  std::string csv;
  int64_t train_size = 6000, test_size = 1000;  // synthetic data only
  bool distributed = false;
};

[[noreturn]] void usage(const std::string& problem) {
  if (!problem.empty()) fmt::print(stderr, "mnist: {}\n", problem);
  fmt::print(stderr,
             "usage: mnist [--data DIR] [--epochs N] [--batch N] [--lr X] [--momentum X]\n"
             "             [--hidden N[,N...]] [--val FRACTION] [--seed N] [--csv FILE]\n"
             "             [--train-size N] [--test-size N] [--distributed]\n");
  std::exit(problem.empty() ? 0 : 2);
}

int64_t to_int(const std::string& option, const std::string& s, int64_t min) {
  return examples::parse_int(option, s, min, usage);
}

double to_double(const std::string& option, const std::string& s) {
  return examples::parse_nonnegative(option, s, usage);
}

Settings parse(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    std::string opt = argv[i];
    if (opt == "-h" || opt == "--help") usage("");
    if (opt == "--distributed") {
      s.distributed = true;
      continue;
    }
    if (i + 1 >= argc) usage(fmt::format("unknown option or missing value: '{}'", opt));
    std::string v = argv[++i];
    if (opt == "--data") {
      s.data = v;
    } else if (opt == "--epochs") {
      s.epochs = to_int(opt, v, 1);
    } else if (opt == "--batch") {
      s.batch = to_int(opt, v, 1);
    } else if (opt == "--lr") {
      s.lr = to_double(opt, v);
    } else if (opt == "--momentum") {
      s.momentum = to_double(opt, v);
    } else if (opt == "--hidden") {
      s.hidden.clear();
      size_t start = 0;
      while (start <= v.size()) {
        size_t comma = v.find(',', start);
        if (comma == std::string::npos) comma = v.size();
        s.hidden.push_back(to_int(opt, v.substr(start, comma - start), 1));
        start = comma + 1;
      }
    } else if (opt == "--val") {
      s.val = to_double(opt, v);
      if (s.val >= 1) usage("--val must be below 1");
    } else if (opt == "--seed") {
      s.seed = static_cast<uint64_t>(to_int(opt, v, 0));
    } else if (opt == "--csv") {
      s.csv = v;
    } else if (opt == "--train-size") {
      s.train_size = to_int(opt, v, 2);
    } else if (opt == "--test-size") {
      s.test_size = to_int(opt, v, 1);
    } else {
      usage(fmt::format("unknown option '{}'", opt));
    }
  }
  return s;
}

// Images [N, rows, cols] -> [N, rows * cols].
nn::TensorDataset flattened(const nn::TensorDataset& d) {
  const Tensor& x = d.tensors()[0];
  return nn::TensorDataset(x.reshape({x.size(0), -1}), d.tensors()[1]);
}

int64_t num_classes(const Tensor& labels) {
  std::vector<int64_t> v = labels.to_vector<int64_t>();
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end()) + 1;
}

// (training images, test images), flattened, pixels in [0, 1].
std::pair<nn::TensorDataset, nn::TensorDataset> load_data(const Settings& s, bool root) {
  if (!s.data.empty()) {
    auto [train, test] = nn::load_mnist(s.data, /*flatten=*/false);
    const Tensor& x = train.tensors()[0];
    if (root)
      fmt::print("data: {} training and {} test images of {}x{} from {}\n", train.size(),
                 test.size(), x.size(1), x.size(2), s.data);
    return {flattened(train), flattened(test)};
  }
  nn::DigitsOptions o;
  if (root)
    fmt::print("data: no --data given; {} training and {} test synthetic digit images of {}x{}\n",
               s.train_size, s.test_size, o.rows, o.cols);
  return {nn::synthetic_digits(s.train_size, /*seed=*/1, o),
          nn::synthetic_digits(s.test_size, /*seed=*/2, o)};
}

int run(const Settings& s, examples::DataParallel& dp) {
  const bool root = dp.root();
  // ---- data ----
  auto [train_all, test] = load_data(s, root);
  auto [train, val] = train_all.split(s.val);
  if (train.size() == 0) throw ValueError("mnist: no training images left after the split");
  const int64_t inputs = train.tensors()[0].size(1);
  const int64_t classes = std::max(num_classes(train.tensors()[1]), num_classes(test.tensors()[1]));

  // ---- model and optimizer ----
  Generator init(s.seed);
  std::vector<int64_t> sizes = {inputs};
  sizes.insert(sizes.end(), s.hidden.begin(), s.hidden.end());
  sizes.push_back(classes);
  auto model = nn::make_mlp(sizes, "relu", 0.0, &init);
  dp.attach(*model);  // several ranks: rank 0's weights everywhere, gradients averaged
  nn::SGD opt(model->parameters(), {.lr = s.lr, .momentum = s.momentum});
  examples::Batches loader(dp, train, s.batch, s.seed + 1);
  if (root) {
    fmt::print("model: MLP {} ({} parameters), SGD lr {} momentum {}, batch {}, {} epochs\n",
               fmt::join(sizes, "-"), model->num_parameters(), s.lr, s.momentum, s.batch, s.epochs);
    if (dp.on())
      fmt::print("data parallel: {} ranks, batch {} per rank ({} in all)\n", dp.world(), s.batch,
                 s.batch * dp.world());
    fmt::print("training on {} images, validating on {}\n", train.size(), val.size());
  }

  // ---- training ----
  std::optional<nn::MetricsLog> log;
  if (!s.csv.empty() && root) log.emplace(s.csv);
  // Only rank 0 shows progress (its own batches' loss while the epoch runs).
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> quiet(
      root ? nullptr : std::fopen("/dev/null", "w"),
      [](std::FILE* f) { return f ? std::fclose(f) : 0; });
  nn::ProgressOptions po;
  if (!root) po.out = quiet.get();
  nn::Progress progress(s.epochs, loader.batches_per_epoch(), po);
  for (int64_t epoch = 1; epoch <= s.epochs; ++epoch) {
    progress.start_epoch(epoch);
    double loss_sum = 0, samples = 0;  // this rank's, for the mean over all ranks
    loader.epoch([&](const std::vector<Tensor>& batch) {
      opt.zero_grad();
      Tensor loss = nn::cross_entropy((*model)(batch[0]), batch[1]);
      loss.backward();
      dp.average_gradients();
      opt.step();
      progress.step(loss.item(), batch[0].size(0));
      loss_sum += loss.item() * static_cast<double>(batch[0].size(0));
      samples += static_cast<double>(batch[0].size(0));
    });
    nn::Metrics row{epoch, opt.steps(), dp.mean(loss_sum, samples)};
    std::string summary;
    if (dp.on()) summary = fmt::format("all ranks: loss {:.4f}", row.train_loss);
    if (val.size() > 0) {
      nn::Evaluation v = dp.evaluate(*model, val);
      row.val_loss = v.loss;
      row.val_accuracy = v.accuracy;
      summary += fmt::format("{}val loss {:.4f} accuracy {:.4f}", summary.empty() ? "" : ", ",
                             v.loss, v.accuracy);
    }
    progress.end_epoch(summary);
    row.lr = opt.param_groups()[0].lr();
    row.seconds = progress.elapsed();
    if (log) log->write(row);
  }
  if (log) fmt::print("metrics written to {}\n", log->path());

  nn::Evaluation t = dp.evaluate(*model, test);
  if (root) {
    fmt::print("test loss {:.4f}\n", t.loss);
    fmt::print("test accuracy {:.4f}\n", t.accuracy);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s = parse(argc, argv);
  return examples::DataParallel::run("mnist", [&] {
    examples::DataParallel dp(s.distributed || examples::DataParallel::launched_by_mpirun(), argc,
                              argv);
    return run(s, dp);
  });
}
