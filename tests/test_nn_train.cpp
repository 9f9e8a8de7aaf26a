// The training helpers (progress display, metrics CSV, evaluate) and end-to-end training: XOR to
// 100% and two spirals to at least 95% held-out accuracy.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nn/nn.h"
#include "support.h"

using namespace ag;
namespace fs = std::filesystem;

namespace {

std::string temp_path(const std::string& name) {
  static int counter = 0;
  return (fs::temp_directory_path() /
          fmt::format("ag_test_train_{}_{}_{}", ::getpid(), counter++, name))
      .string();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Captures what a Progress prints (a temporary FILE*) and drives its clock by hand.
struct Capture {
  std::FILE* file = std::tmpfile();
  double t = 0;
  ~Capture() { std::fclose(file); }
  nn::ProgressOptions options(int interactive, int64_t every = 2, double redraw = 0) {
    nn::ProgressOptions o;
    o.out = file;
    o.interactive = interactive;
    o.every = every;
    o.redraw_seconds = redraw;
    o.clock = [this] { return t; };
    return o;
  }
  std::string text() const {
    std::fflush(file);
    std::string s;
    std::rewind(file);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) s.append(buf, n);
    return s;
  }
};

int count(const std::string& s, char c) {
  return static_cast<int>(std::count(s.begin(), s.end(), c));
}

// A Linear(2, 3) classifier with known weights: logits = (x0, x1, -x0 - x1).
std::shared_ptr<nn::Linear> known_classifier() {
  auto lin = std::make_shared<nn::Linear>(2, 3);
  NoGradGuard ng;
  lin->weight.copy_(Tensor({{1.0, 0.0}, {0.0, 1.0}, {-1.0, -1.0}}));
  lin->bias.zero_();
  return lin;
}

// Four samples; the model gets the first three right and the last wrong (logits (1, 1, -2): the
// first maximum, class 0, is predicted; the label is 2).
nn::TensorDataset known_data() {
  Tensor x = Tensor({{2.0, 0.0}, {0.0, 2.0}, {-1.0, -1.0}, {1.0, 1.0}});
  return nn::TensorDataset(x, Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 2}));
}

double known_loss() {
  auto ce = [](std::vector<double> row, int y) {
    double s = 0;
    for (double v : row) s += std::exp(v);
    return std::log(s) - row[y];
  };
  return (ce({2, 0, -2}, 0) + ce({0, 2, -2}, 1) + ce({-1, -1, 2}, 2) + ce({1, 1, -2}, 2)) / 4;
}

// Records the grad mode and the training flag its forward ran with.
struct Spy : nn::Module {
  Spy() { inner = register_module("inner", known_classifier()); }
  Tensor forward(const Tensor& x) override {
    grad_enabled = is_grad_enabled();
    training = is_training();
    return inner->forward(x);
  }
  std::shared_ptr<nn::Linear> inner;
  bool grad_enabled = true, training = true;
};

// Full-batch training of a classifier with Adam; returns the final training loss.
double fit(nn::Module& model, const nn::TensorDataset& data, int steps, double lr) {
  nn::Adam opt(model.parameters(), {.lr = lr});
  const Tensor &x = data.tensors()[0], &y = data.tensors()[1];
  double loss_value = 0;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    Tensor loss = nn::cross_entropy(model(x), y);
    loss.backward();
    opt.step();
    loss_value = loss.item();
  }
  return loss_value;
}

}  // namespace

// ---- MetricsLog ----

TEST_CASE("MetricsLog writes a CSV header and one row per write, empty fields for NaN") {
  std::string path = temp_path("metrics.csv");
  {
    nn::MetricsLog log(path);
    CHECK(log.path() == path);
    CHECK(read_file(path) == "epoch,step,train_loss,val_loss,val_accuracy,lr,seconds\n");
    log.write({1, 10, 0.5, NAN, NAN, 0.1, 1.25});
    // Flushed at once: readable while the log is open.
    CHECK(read_file(path) ==
          "epoch,step,train_loss,val_loss,val_accuracy,lr,seconds\n1,10,0.5,,,0.1,1.25\n");
    log.write({2, 20, 0.25, 0.3, 0.875, 0.05, 2.5});
  }
  CHECK(read_file(path) ==
        "epoch,step,train_loss,val_loss,val_accuracy,lr,seconds\n"
        "1,10,0.5,,,0.1,1.25\n"
        "2,20,0.25,0.3,0.875,0.05,2.5\n");
  // A second log at the same path starts afresh.
  { nn::MetricsLog again(path); }
  CHECK(read_file(path) == std::string(nn::MetricsLog::header()) + "\n");
  fs::remove(path);
  CHECK_THROWS_WITH_PARTS(nn::MetricsLog("/nonexistent-dir/metrics.csv"), IOError, "MetricsLog",
                          "/nonexistent-dir/metrics.csv");
}

// ---- evaluate ----

TEST_CASE("evaluate: mean cross-entropy and accuracy of a known model, any batch size") {
  auto model = known_classifier();
  nn::TensorDataset data = known_data();
  for (int64_t batch : {1, 3, 4, 100}) {
    INFO("batch " << batch);
    nn::Evaluation e = nn::evaluate(*model, data, batch);
    CHECK(e.samples == 4);
    CHECK(e.accuracy == 0.75);
    CHECK(e.loss == doctest::Approx(known_loss()).epsilon(1e-6));
  }
}

TEST_CASE("evaluate runs in eval mode without recording, and restores the mode") {
  Spy spy;
  nn::TensorDataset data = known_data();
  nn::evaluate(spy, data);
  CHECK_FALSE(spy.grad_enabled);
  CHECK_FALSE(spy.training);
  CHECK(spy.is_training());  // restored
  spy.eval();
  nn::evaluate(spy, data);
  CHECK_FALSE(spy.is_training());
  CHECK(is_grad_enabled());
  // Dropout in the model is off during evaluation: the numbers are the deterministic ones.
  nn::Sequential with_dropout{known_classifier(), std::make_shared<nn::Dropout>(0.9, 1)};
  nn::Evaluation e = nn::evaluate(with_dropout, data, 2);
  CHECK(e.accuracy == 0.75);
  CHECK(e.loss == doctest::Approx(known_loss()).epsilon(1e-6));
  CHECK(with_dropout.is_training());
}

TEST_CASE("evaluate errors") {
  auto model = known_classifier();
  nn::TensorDataset data = known_data();
  CHECK_THROWS_WITH_PARTS(nn::evaluate(*model, data, 0), ValueError, "evaluate", "batch size");
  CHECK_THROWS_WITH_PARTS(nn::evaluate(*model, nn::TensorDataset({data.tensors()[0]})), ValueError,
                          "evaluate", "labels");
  CHECK_THROWS_WITH_PARTS(nn::evaluate(*model, nn::TensorDataset(data.tensors()[0], zeros({4}))),
                          DtypeError, "evaluate", "int64", "float32");
  nn::Sequential flat{known_classifier(), std::make_shared<nn::Softmax>()};
  struct Flatten : nn::Module {
    Tensor forward(const Tensor& x) override { return x.flatten(); }
  };
  flat.push_back(std::make_shared<Flatten>());
  CHECK_THROWS_WITH_PARTS(nn::evaluate(flat, data), ShapeError, "evaluate", "[12]", "[4, 2]");
  CHECK_THROWS_WITH_PARTS(nn::evaluate(*model, data.split(1.0).first), ValueError, "evaluate",
                          "empty");
}

// ---- Progress ----

TEST_CASE("format_duration: h:mm:ss or m:ss") {
  CHECK(nn::format_duration(3723) == "1:02:03");
  CHECK(nn::format_duration(137) == "2:17");
  CHECK(nn::format_duration(5) == "0:05");
  CHECK(nn::format_duration(0) == "0:00");
  CHECK(nn::format_duration(-1) == "?");
  CHECK(nn::format_duration(NAN) == "?");
  CHECK(nn::format_duration(INFINITY) == "?");
}

TEST_CASE("Progress on a file: plain lines every N steps and a summary per epoch") {
  Capture cap;
  nn::Progress progress(2, 4, cap.options(/*interactive=*/0, /*every=*/2));
  CHECK_FALSE(progress.interactive());
  for (int64_t epoch = 1; epoch <= 2; ++epoch) {
    progress.start_epoch(epoch);
    for (int s = 1; s <= 4; ++s) {
      cap.t += 0.5;  // each step takes half a second, 10 samples
      progress.step(epoch == 1 ? 1.0 : 0.5, 10);
    }
    progress.end_epoch(epoch == 2 ? "val loss 0.4000" : "");
  }
  // Epoch 1, step 2: 20 samples in 1 s; 2 steps left in this epoch + 4 in the next at 0.5 s each.
  CHECK(cap.text() ==
        "epoch 1/2 step 2/4 loss 1.0000 20 samples/s ETA 0:03\n"
        "epoch 1/2 step 4/4 loss 1.0000 20 samples/s ETA 0:02\n"
        "epoch 1/2 done: loss 1.0000, 40 samples in 2.0 s\n"
        "epoch 2/2 step 2/4 loss 0.5000 20 samples/s ETA 0:01\n"
        "epoch 2/2 step 4/4 loss 0.5000 20 samples/s ETA 0:00\n"
        "epoch 2/2 done: loss 0.5000, 40 samples in 2.0 s, val loss 0.4000\n");
  CHECK(progress.total_steps() == 8);
  CHECK(progress.elapsed() == 4.0);
  CHECK(progress.epoch() == 2);
  CHECK(progress.step_in_epoch() == 4);
}

TEST_CASE("Progress: every = 0 prints only the epoch summaries; step counts are padded") {
  Capture cap;
  nn::Progress quiet(1, 3, cap.options(0, 0));
  quiet.start_epoch(1);
  for (int s = 0; s < 3; ++s) quiet.step(2.0, 4);
  quiet.end_epoch();
  CHECK(cap.text() == "epoch 1/1 done: loss 2.0000, 12 samples in 0.0 s\n");

  Capture wide;
  nn::Progress padded(1, 100, wide.options(0, 5));
  padded.start_epoch(1);
  for (int s = 0; s < 5; ++s) padded.step(1.0, 1);
  // No time has passed: the speed is unknown ("-") but the ETA still follows from 0 s per step.
  CHECK(wide.text() == "epoch 1/1 step   5/100 loss 1.0000 - samples/s ETA 0:00\n");
}

TEST_CASE("Progress: the loss shown is the epoch's running mean weighted by batch size") {
  Capture cap;
  nn::Progress progress(1, 10, cap.options(0, 0));
  progress.start_epoch(1);
  CHECK(std::isnan(progress.epoch_loss()));
  progress.step(1.0, 10);
  progress.step(3.0, 30);
  CHECK(progress.epoch_loss() == doctest::Approx(2.5));
  progress.start_epoch(2);
  CHECK(std::isnan(progress.epoch_loss()));
}

TEST_CASE("Progress on a terminal: one line redrawn with \\r, a bar, a newline per epoch") {
  Capture cap;
  nn::Progress progress(1, 4, cap.options(/*interactive=*/1));
  CHECK(progress.interactive());
  progress.start_epoch(1);
  cap.t = 1;
  progress.step(0.25, 8);
  std::string first = cap.text();
  CHECK(first == "\repoch 1/1 [=====>              ] 1/4 loss 0.2500 8 samples/s ETA 0:03");
  for (int s = 0; s < 3; ++s) {
    cap.t += 1;
    progress.step(0.25, 8);
  }
  std::string all = cap.text();
  CHECK(count(all, '\n') == 0);
  CHECK(count(all, '\r') == 4);
  CHECK(all.ends_with("\repoch 1/1 [====================] 4/4 loss 0.2500 8 samples/s ETA 0:00"));
  progress.end_epoch("val accuracy 0.9000");
  all = cap.text();
  CHECK(all.ends_with("\n"));
  CHECK(count(all, '\n') == 1);
  // The summary is drawn over the progress line (padded with spaces if shorter), then a newline.
  std::string summary = "epoch 1/1 done: loss 0.2500, 32 samples in 4.0 s, val accuracy 0.9000";
  CHECK(all.find("\r" + summary) != std::string::npos);
}

TEST_CASE("Progress on a terminal redraws at most every redraw_seconds (and at the epoch's end)") {
  Capture cap;
  nn::Progress progress(1, 10, cap.options(1, 2, /*redraw=*/10.0));
  progress.start_epoch(1);
  for (int s = 0; s < 10; ++s) {
    cap.t += 0.5;
    progress.step(1.0, 1);
  }
  // The first step and the last one only.
  CHECK(count(cap.text(), '\r') == 2);
}

TEST_CASE("Progress detects whether its output is a terminal") {
  Capture cap;
  nn::Progress progress(1, 1, cap.options(/*interactive=*/-1));
  CHECK_FALSE(progress.interactive());  // a temporary file is not a terminal
}

TEST_CASE("Progress argument errors") {
  CHECK_THROWS_WITH_PARTS(nn::Progress(0, 10), ValueError, "Progress", "epochs");
  CHECK_THROWS_WITH_PARTS(nn::Progress(2, 0), ValueError, "Progress", "steps");
}

// ---- training end to end ----

TEST_CASE("XOR is learned to 100% by a small MLP") {
  Generator gen(1);
  auto model = nn::make_mlp({2, 8, 2}, "tanh", 0.0, &gen);
  nn::TensorDataset corners = nn::xor_dataset();
  double loss = fit(*model, corners, 300, 0.05);
  CHECK(loss < 0.05);
  nn::Evaluation e = nn::evaluate(*model, corners);
  CHECK(e.accuracy == 1.0);
  // Noisy samples around the corners are classified too.
  CHECK(nn::evaluate(*model, nn::xor_dataset(200, 0.1, 3)).accuracy == 1.0);
}

TEST_CASE("two spirals: at least 95% on held-out points, with DataLoader, Progress and the log") {
  Generator gen(2);
  auto model = nn::make_mlp({2, 64, 64, 2}, "tanh", 0.0, &gen);
  nn::TensorDataset train = nn::two_spirals(200, 0.02, 1);
  nn::TensorDataset test = nn::two_spirals(100, 0.02, 2);
  nn::DataLoader loader(train, {.batch_size = 50, .shuffle = true, .seed = 4});
  nn::Adam opt(model->parameters(), {.lr = 0.01});
  const int epochs = 200;
  nn::CosineWarmupLR sched(opt, 5 * loader.batches_per_epoch(),
                           epochs * loader.batches_per_epoch());
  Capture cap;
  nn::Progress progress(epochs, loader.batches_per_epoch(), cap.options(0, 0));
  std::string csv = temp_path("spirals.csv");
  {
    nn::MetricsLog log(csv);
    for (int epoch = 1; epoch <= epochs; ++epoch) {
      progress.start_epoch(epoch);
      for (auto batch : loader) {
        opt.zero_grad();
        Tensor loss = nn::cross_entropy((*model)(batch[0]), batch[1]);
        loss.backward();
        opt.step();
        sched.step();
        progress.step(loss.item(), batch[0].size(0));
      }
      progress.end_epoch();
      if (epoch % 50 == 0) {
        nn::Evaluation v = nn::evaluate(*model, test);
        log.write({epoch, opt.steps(), progress.epoch_loss(), v.loss, v.accuracy,
                   opt.param_groups()[0].lr(), progress.elapsed()});
      }
    }
  }
  nn::Evaluation e = nn::evaluate(*model, test);
  INFO(cap.text());
  CHECK(e.accuracy >= 0.95);
  CHECK(nn::evaluate(*model, train).accuracy >= 0.95);
  // One summary line per epoch and a CSV row every 50 epochs.
  CHECK(count(cap.text(), '\n') == epochs);
  std::string log_text = read_file(csv);
  CHECK(count(log_text, '\n') == 1 + epochs / 50);
  CHECK(log_text.find("\n200,1600,") != std::string::npos);
  fs::remove(csv);
}
