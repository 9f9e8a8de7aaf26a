// Trains LeNet-5, a convolutional network, on images in MNIST's IDX files (any image size from
// 8x8 up), or on synthetic stroke-drawn digits when no data is given.
//
//   cnn [--data DIR] [--epochs 5] [--batch 64] [--lr 0.02] [--momentum 0.9] [--val 0.1]
//       [--seed 0] [--train-size 3000] [--test-size 1000] [--image-size 28]
//   cnn --write-data DIR [--train-size 3000] [--test-size 1000] [--image-size 28]
//
// --write-data writes the synthetic training and test images that a run without --data would use
// into DIR as IDX files with MNIST's names (pixels rounded to bytes), and exits: another program
// (examples/cnn_torch.py, the same recipe in PyTorch) and this one given --data DIR then train on
// identical bytes.
//
// DIR holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
// t10k-labels-idx1-ubyte (each may be gzip-compressed, with ".gz"), as for examples/mnist. Pixels
// are scaled to [0, 1]. The network is the classic LeNet-5 (as the bench's cnn workload):
//   conv 1->6 5x5 padding 2, ReLU, 2x2 max-pool, conv 6->16 5x5, ReLU, 2x2 max-pool,
//   flatten (16*5*5 = 400), Linear 120, ReLU, Linear 84, ReLU, Linear classes.
// Image sizes: the network is built for 28x28. Images smaller than that on either side are padded
// with zeros, centred, up to 28 on that side (so 8x8 to 27x27 images work unchanged); larger images
// go through as they are and an adaptive average pool brings the last feature map to 5x5 before
// flattening. Pixels are then standardised with the training set's mean and standard deviation.
// Training is SGD with momentum on shuffled mini-batches, a held-out fraction (--val)
// of the training images evaluated after every epoch and the test images once at the end.
// Without --data, --train-size and --test-size synthetic digits of --image-size pixels are drawn.
//
// The last line printed is exactly "test accuracy <fraction>".
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "nn/nn.h"

using namespace ag;

namespace {

struct Settings {
  std::string data, write_data;
  int64_t epochs = 5;
  int64_t batch = 64;
  double lr = 0.02;
  double momentum = 0.9;
  double val = 0.1;
  uint64_t seed = 0;
  int64_t train_size = 3000, test_size = 1000, image_size = 28;  // synthetic data only
};

[[noreturn]] void usage(const std::string& problem) {
  if (!problem.empty()) fmt::print(stderr, "cnn: {}\n", problem);
  fmt::print(stderr,
             "usage: cnn [--data DIR] [--epochs N] [--batch N] [--lr X] [--momentum X]\n"
             "           [--val FRACTION] [--seed N] [--train-size N] [--test-size N]\n"
             "           [--image-size N]\n"
             "       cnn --write-data DIR [--train-size N] [--test-size N] [--image-size N]\n");
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
    if (i + 1 >= argc) usage(fmt::format("unknown option or missing value: '{}'", opt));
    std::string v = argv[++i];
    if (opt == "--data") {
      s.data = v;
    } else if (opt == "--write-data") {
      s.write_data = v;
    } else if (opt == "--epochs") {
      s.epochs = to_int(opt, v, 1);
    } else if (opt == "--batch") {
      s.batch = to_int(opt, v, 1);
    } else if (opt == "--lr") {
      s.lr = to_double(opt, v);
    } else if (opt == "--momentum") {
      s.momentum = to_double(opt, v);
    } else if (opt == "--val") {
      s.val = to_double(opt, v);
      if (s.val >= 1) usage("--val must be below 1");
    } else if (opt == "--seed") {
      s.seed = static_cast<uint64_t>(to_int(opt, v, 0));
    } else if (opt == "--train-size") {
      s.train_size = to_int(opt, v, 2);
    } else if (opt == "--test-size") {
      s.test_size = to_int(opt, v, 1);
    } else if (opt == "--image-size") {
      s.image_size = to_int(opt, v, 8);
    } else {
      usage(fmt::format("unknown option '{}'", opt));
    }
  }
  return s;
}

int64_t num_classes(const Tensor& labels) {
  std::vector<int64_t> v = labels.to_vector<int64_t>();
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end()) + 1;
}

// The synthetic training and test sets ([N, size * size] pixels in [0, 1], labels [N]).
std::pair<nn::TensorDataset, nn::TensorDataset> synthetic_data(const Settings& s) {
  nn::DigitsOptions o;
  o.rows = o.cols = s.image_size;
  o.max_shift = 2.0 * static_cast<double>(s.image_size) / 28.0;
  o.jitter = static_cast<double>(s.image_size) / 28.0;
  return {nn::synthetic_digits(s.train_size, /*seed=*/1, o),
          nn::synthetic_digits(s.test_size, /*seed=*/2, o)};
}

// Images [N, rows, cols] (or flattened [N, rows * cols]) -> [N, 1, H, W] with H, W >= 28: sides
// below 28 are padded with zeros, centred.
nn::TensorDataset as_images(const nn::TensorDataset& d, int64_t rows, int64_t cols) {
  NoGradGuard no_grad;
  Tensor x = d.tensors()[0].reshape({d.size(), 1, rows, cols});
  const int64_t ph = std::max<int64_t>(0, 28 - rows), pw = std::max<int64_t>(0, 28 - cols);
  if (ph > 0 || pw > 0) x = pad(x, {pw / 2, pw - pw / 2, ph / 2, ph - ph / 2});
  return nn::TensorDataset(x.contiguous(), d.tensors()[1]);
}

// (training images, test images) as [N, 1, H, W], pixels in [0, 1].
std::pair<nn::TensorDataset, nn::TensorDataset> load_data(const Settings& s) {
  if (!s.data.empty()) {
    auto [train, test] = nn::load_mnist(s.data, /*flatten=*/false);
    const Tensor& x = train.tensors()[0];
    const int64_t rows = x.size(1), cols = x.size(2);
    if (rows < 8 || cols < 8)
      throw ValueError(fmt::format("cnn: images must be at least 8x8, got {}x{}", rows, cols));
    fmt::print("data: {} training and {} test images of {}x{} from {}\n", train.size(), test.size(),
               rows, cols, s.data);
    return {as_images(train, rows, cols), as_images(test, rows, cols)};
  }
  fmt::print("data: no --data given; {} training and {} test synthetic digit images of {}x{}\n",
             s.train_size, s.test_size, s.image_size, s.image_size);
  auto [train, test] = synthetic_data(s);
  return {as_images(train, s.image_size, s.image_size),
          as_images(test, s.image_size, s.image_size)};
}

// --write-data DIR (created if missing): the synthetic sets as IDX files ([N, rows, cols] bytes,
// labels).
int write_data(const Settings& s) {
  auto [train, test] = synthetic_data(s);
  const std::string& dir = s.write_data;
  std::filesystem::create_directories(dir);
  auto images = [&](const nn::TensorDataset& d) {
    return d.tensors()[0].reshape({d.size(), s.image_size, s.image_size});
  };
  nn::write_idx_images(dir + "/train-images-idx3-ubyte", images(train));
  nn::write_idx_labels(dir + "/train-labels-idx1-ubyte", train.tensors()[1]);
  nn::write_idx_images(dir + "/t10k-images-idx3-ubyte", images(test));
  nn::write_idx_labels(dir + "/t10k-labels-idx1-ubyte", test.tensors()[1]);
  fmt::print("wrote {} training and {} test synthetic images of {}x{} to {}\n", train.size(),
             test.size(), s.image_size, s.image_size, dir);
  return 0;
}

// LeNet-5 for [N, 1, H, W] images, H, W >= 28.
std::shared_ptr<nn::Sequential> lenet5(int64_t H, int64_t W, int64_t classes, Generator* gen) {
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Conv2d>(1, 6, 5, 1, 2, 1, 1, true, gen))
      .push_back(std::make_shared<nn::ReLU>())
      .push_back(std::make_shared<nn::MaxPool2d>(2))
      .push_back(std::make_shared<nn::Conv2d>(6, 16, 5, 1, 0, 1, 1, true, gen))
      .push_back(std::make_shared<nn::ReLU>())
      .push_back(std::make_shared<nn::MaxPool2d>(2));
  // The feature map is ((H / 2 - 4) / 2) on each side: 5 for 28; adapt anything larger.
  if ((H / 2 - 4) / 2 != 5 || (W / 2 - 4) / 2 != 5)
    m->push_back(std::make_shared<nn::AdaptiveAvgPool2d>(5));
  m->push_back(std::make_shared<nn::Flatten>())
      .push_back(std::make_shared<nn::Linear>(400, 120, true, gen))
      .push_back(std::make_shared<nn::ReLU>())
      .push_back(std::make_shared<nn::Linear>(120, 84, true, gen))
      .push_back(std::make_shared<nn::ReLU>())
      .push_back(std::make_shared<nn::Linear>(84, classes, true, gen));
  return m;
}

int run(const Settings& s) {
  // ---- data ----
  auto [train_all, test] = load_data(s);
  // Standardise the pixels with the training images' mean and standard deviation (as PyTorch's
  // MNIST recipes do with Normalize): small images padded into 28x28 otherwise give the first
  // layer too little signal to leave the initial plateau quickly.
  {
    NoGradGuard no_grad;
    const Tensor& xs = train_all.tensors()[0];
    const double mu = xs.mean().item(), sd = std::max(ag::std(xs, {}, 0).item(), 1e-6);
    fmt::print("pixels standardised with mean {:.4f} and std {:.4f}\n", mu, sd);
    train_all = nn::TensorDataset((xs - mu) / sd, train_all.tensors()[1]);
    test = nn::TensorDataset((test.tensors()[0] - mu) / sd, test.tensors()[1]);
  }
  auto [train, val] = train_all.split(s.val);
  if (train.size() == 0) throw ValueError("cnn: no training images left after the split");
  const Tensor& x = train.tensors()[0];
  const int64_t classes = std::max(num_classes(train.tensors()[1]), num_classes(test.tensors()[1]));

  // ---- model and optimizer ----
  Generator init(s.seed);
  auto model = lenet5(x.size(2), x.size(3), classes, &init);
  nn::SGD opt(model->parameters(), {.lr = s.lr, .momentum = s.momentum});
  nn::DataLoader loader(train, {.batch_size = s.batch, .shuffle = true, .seed = s.seed + 1});
  fmt::print(
      "model: LeNet-5 on {}x{} inputs ({} parameters{}), SGD lr {} momentum {}, batch {}, "
      "{} epochs\n",
      x.size(2), x.size(3), model->num_parameters(),
      x.size(2) == 28 && x.size(3) == 28 ? "" : ", adaptive pooling to 5x5", s.lr, s.momentum,
      s.batch, s.epochs);
  fmt::print("training on {} images, validating on {}\n", train.size(), val.size());

  // ---- training ----
  nn::Progress progress(s.epochs, loader.batches_per_epoch());
  for (int64_t epoch = 1; epoch <= s.epochs; ++epoch) {
    progress.start_epoch(epoch);
    for (auto batch : loader) {
      opt.zero_grad();
      Tensor loss = nn::cross_entropy((*model)(batch[0]), batch[1]);
      loss.backward();
      opt.step();
      progress.step(loss.item(), batch[0].size(0));
    }
    std::string summary;
    if (val.size() > 0) {
      nn::Evaluation v = nn::evaluate(*model, val);
      summary = fmt::format("val loss {:.4f} accuracy {:.4f}", v.loss, v.accuracy);
    }
    progress.end_epoch(summary);
  }

  nn::Evaluation t = nn::evaluate(*model, test);
  fmt::print("test loss {:.4f}\n", t.loss);
  fmt::print("test accuracy {:.4f}\n", t.accuracy);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s = parse(argc, argv);
  try {
    return s.write_data.empty() ? run(s) : write_data(s);
  } catch (const std::exception& e) {
    fmt::print(stderr, "cnn: {}\n", e.what());
    return 1;
  }
}
