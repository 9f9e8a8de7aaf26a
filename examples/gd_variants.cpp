// The article's three regimes of gradient descent, on the same problems and from the same start:
//
//   full-batch GD       theta <- theta - lr * grad of (1/N) sum over all N samples      1
//   update/epoch single-sample SGD   theta <- theta - lr * grad of the loss of one random sample N
//   updates/epoch mini-batch SGD      theta <- theta - lr * grad of (1/|B|) sum over a random batch
//   B  N/|B| updates
//
// With nn's DataLoader the regime is nothing but the batch size (N, 1 or |B|). Each regime trains
// the same network from the same initial weights with the same learning rate for the same number of
// epochs, on a regression problem (MSE) and a classification problem (cross-entropy). After every
// epoch the loss over the whole training set is measured (not timed). Written: loss against epochs
// and against wall time (SVG), every measurement (CSV), and a summary table.
//
//   gd_variants [output folder, default demo-output]
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "nn/nn.h"
#include "plot.h"

using namespace ag;

namespace {

struct Problem {
  std::string name, loss_name;
  Tensor x, y;
  std::vector<int64_t> sizes;  // MLP layer sizes
  std::string activation;
  double lr;
  int epochs;
  bool classification;
};

// y = sin(3x) + noise, x in [-1, 1] (nn/data/synthetic.h): a curve a small tanh MLP can fit.
Problem regression(int64_t n) {
  nn::TensorDataset d = nn::sine_regression(n, 0.1, 21);
  return {"regression", "MSE", d.tensors()[0], d.tensors()[1], {1, 32, 32, 1}, "tanh",
          0.05,         30,    false};
}

// Three overlapping Gaussian blobs around a circle (nn/data/synthetic.h).
Problem classification(int64_t n) {
  nn::TensorDataset d = nn::gaussian_blobs(n, nn::circle_centers(3, 1.0), 0.6, 22);
  return {"classification",
          "cross-entropy",
          d.tensors()[0],
          d.tensors()[1],
          {2, 32, 3},
          "relu",
          0.05,
          30,
          true};
}

struct Regime {
  std::string name;
  int64_t batch_size;
};

struct Run {
  Regime regime;
  std::vector<double> epoch, seconds, loss;
  int64_t updates = 0;
};

Tensor loss_of(const Problem& p, const Tensor& out, const Tensor& target) {
  return p.classification ? nn::cross_entropy(out, target) : nn::mse_loss(out, target);
}

double full_loss(const Problem& p, nn::Module& model) {
  NoGradGuard ng;
  return loss_of(p, model(p.x), p.y).item();
}

Run train(const Problem& p, const Regime& r) {
  Generator init(1234);  // the same initial weights for every regime
  auto model = nn::make_mlp(p.sizes, p.activation, 0.0, &init);
  nn::SGD opt(model->parameters(), {.lr = p.lr});
  nn::DataLoader loader(nn::TensorDataset(p.x, p.y),
                        {.batch_size = r.batch_size, .shuffle = true, .seed = 99});
  Run run{r, {0}, {0}, {full_loss(p, *model)}};
  // A progress bar on stderr when it is a terminal (nn/train.h); the tables go to stdout.
  nn::ProgressOptions bar;
  bar.out = stderr;
  bar.every = 0;  // when not on a terminal: no lines at all
  nn::Progress progress(p.epochs, loader.batches_per_epoch(), bar);
  double elapsed = 0;
  for (int epoch = 1; epoch <= p.epochs; ++epoch) {
    progress.start_epoch(epoch);
    auto t0 = std::chrono::steady_clock::now();
    for (auto batch : loader) {
      opt.zero_grad();
      Tensor loss = loss_of(p, (*model)(batch[0]), batch[1]);
      loss.backward();
      opt.step();
      ++run.updates;
      progress.step(loss.item(), batch[0].size(0));
    }
    elapsed += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    run.epoch.push_back(epoch);
    run.seconds.push_back(elapsed);
    run.loss.push_back(full_loss(p, *model));
  }
  if (progress.interactive()) progress.end_epoch(r.name);
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "demo-output";
  const int64_t n = 1024;
  plot::Csv csv({"problem", "regime", "batch_size", "epoch", "updates", "seconds", "loss"});
  std::vector<std::string> table;

  for (const Problem& p : {regression(n), classification(n)}) {
    const std::vector<Regime> regimes = {{"full-batch GD", n},
                                         {"mini-batch 128", 128},
                                         {"mini-batch 32", 32},
                                         {"mini-batch 8", 8},
                                         {"single-sample SGD", 1}};
    fmt::print("\n{} ({}), {} samples, MLP {}, {} epochs, lr {} for every regime\n", p.name,
               p.loss_name, n, fmt::join(p.sizes, "-"), p.epochs, p.lr);
    plot::Figure by_epoch(fmt::format("{}: loss over the training set vs epochs", p.name), "epoch",
                          p.loss_name);
    plot::Figure by_time(fmt::format("{}: loss over the training set vs training time", p.name),
                         "seconds", p.loss_name);
    by_epoch.log_y = by_time.log_y = true;
    by_time.log_x = true;  // the regimes take times that differ by orders of magnitude
    for (const Regime& r : regimes) {
      Run run = train(p, r);
      auto& se = by_epoch.add(r.name);
      se.x = run.epoch, se.y = run.loss;
      auto& st = by_time.add(r.name);
      st.x = run.seconds, st.y = run.loss;
      for (size_t i = 0; i < run.epoch.size(); ++i)
        csv.row(p.name, r.name, r.batch_size, static_cast<int>(run.epoch[i]),
                run.updates * static_cast<int64_t>(run.epoch[i]) / p.epochs, run.seconds[i],
                run.loss[i]);
      double secs = run.seconds.back();
      table.push_back(fmt::format("{:<15} {:<18} {:>6} {:>10} {:>10} {:>12.5f} {:>9.3f} {:>10.1f}",
                                  p.name, r.name, r.batch_size, run.updates / p.epochs, run.updates,
                                  run.loss.back(), secs, 1e6 * secs / run.updates));
      fmt::print("  {:<18} loss {:.5f} -> {:.5f} in {:.3f} s ({} updates)\n", r.name,
                 run.loss.front(), run.loss.back(), secs, run.updates);
    }
    by_epoch.save(fmt::format("{}/gd_{}_epochs.svg", dir, p.name));
    by_time.save(fmt::format("{}/gd_{}_time.svg", dir, p.name));
  }
  csv.save(dir + "/gd_variants.csv");

  fmt::print("\nSummary (loss over the whole training set after the last epoch)\n");
  fmt::print("{:<15} {:<18} {:>6} {:>10} {:>10} {:>12} {:>9} {:>10}\n", "problem", "regime",
             "batch", "upd/epoch", "updates", "final loss", "seconds", "us/update");
  for (const auto& line : table) fmt::print("{}\n", line);
  fmt::print(
      "\nwrote {0}/gd_regression_epochs.svg, {0}/gd_regression_time.svg, "
      "{0}/gd_classification_epochs.svg, {0}/gd_classification_time.svg, "
      "{0}/gd_variants.csv\n",
      dir);
}
