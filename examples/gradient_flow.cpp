// Gradient flow through a deep network: why deep sigmoid networks learn slowly in their first
// layers.
//
// Backpropagation multiplies the error by W(l+1)^T and by sigma'(z(l)) once per layer on its way
// back:
//   delta(l) = W(l+1)^T delta(l+1) * sigma'(z(l))
// The sigmoid's derivative is at most 1/4, so with weights of moderate size the error shrinks by a
// roughly constant factor per layer: the layers near the input get gradients orders of magnitude
// smaller than those near the output (vanishing gradients, one of the instabilities the article
// lists for fine-tuning). ReLU's derivative is 1 wherever a unit is active, and with He
// initialisation the size of the error is kept from layer to layer.
//
// Two networks of the same shape (10 hidden layers of 32) learn the same task: one with sigmoid and
// Xavier initialisation, one with ReLU and He (Kaiming) initialisation. A third, the ReLU network
// with every weight doubled, shows the opposite failure at its first step: each layer on the way
// back multiplies the error by about 2, so it grows toward the input (exploding gradients). After
// every step we read, per layer, the norm of dLoss/dW(l) (from .grad) and the norm of delta(l) =
// dLoss/dz(l): autograd stores the latter on the Linear node of that layer when gradient-norm
// tracing is on (Node::diagnostics.last_grad_norm).
//
//   gradient_flow [output folder, default demo-output]
//   writes gradient_flow_layers.svg, gradient_flow_steps.svg, gradient_flow_loss.svg,
//   gradient_flow.csv
#include <fmt/format.h>

#include <cmath>
#include <string>
#include <vector>

#include "nn/nn.h"
#include "plot.h"

using namespace ag;

namespace {

constexpr int kHidden = 10;
constexpr int64_t kWidth = 32;

// A plain stack of Linear layers with one activation between them (and none after the last).
struct DeepNet {
  std::string activation;
  std::vector<std::shared_ptr<nn::Linear>> layers;
  std::vector<Tensor> z;  // the pre-activations of the last forward, z[l] = layer l's output

  // weight_scale multiplies every initial weight (1: the textbook initialisation).
  DeepNet(const std::string& act, int64_t in, int64_t out, uint64_t seed, double weight_scale = 1.0)
      : activation(act) {
    Generator gen(seed);
    std::vector<int64_t> sizes{in};
    for (int i = 0; i < kHidden; ++i) sizes.push_back(kWidth);
    sizes.push_back(out);
    for (size_t l = 1; l < sizes.size(); ++l) {
      auto lin = std::make_shared<nn::Linear>(sizes[l - 1], sizes[l], true, &gen);
      if (act == "sigmoid") {
        nn::init::xavier_normal_(lin->weight, 1.0, &gen);
      } else {
        nn::init::kaiming_normal_(lin->weight, 0.0, "fan_in", "relu", &gen);
      }
      if (weight_scale != 1.0) {
        NoGradGuard ng;
        lin->weight.mul_(weight_scale);
      }
      nn::init::zeros_(lin->bias);
      layers.push_back(lin);
    }
  }

  Tensor forward(const Tensor& x) {
    z.clear();
    Tensor a = x;
    for (size_t l = 0; l < layers.size(); ++l) {
      z.push_back((*layers[l])(a));
      bool last = l + 1 == layers.size();
      a = last ? z.back() : activation == "sigmoid" ? sigmoid(z.back()) : relu(z.back());
    }
    return a;
  }

  std::vector<Tensor> parameters() const {
    std::vector<Tensor> p;
    for (auto& l : layers) {
      p.push_back(l->weight);
      p.push_back(l->bias);
    }
    return p;
  }
};

double norm_of(const Tensor& t) { return std::sqrt(sum(mul(t, t)).item()); }

// Prints the per-layer gradient norms of one step, from the output back to the input.
void print_norms(const std::vector<double>& gw, const std::vector<double>& gd) {
  const size_t L = gw.size();
  fmt::print("  {:>5}  {:>14}  {:>14}\n", "layer", "|dLoss/dW(l)|", "|delta(l)|");
  for (size_t l = L; l-- > 0;) fmt::print("  {:>5}  {:>14.3e}  {:>14.3e}\n", l + 1, gw[l], gd[l]);
  fmt::print("  ratio layer 1 / layer {}: {:.2e}\n", L, gw[0] / gw[L - 1]);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "demo-output";
  nn::TensorDataset data = nn::two_spirals(512, 0.05, 3);  // 1024 points, two classes
  const int epochs = 25;
  const double lr = 0.03;

  plot::Figure layers_fig("gradient norm per layer, first step", "layer (1 = next to the input)",
                          "norm");
  layers_fig.log_y = true;
  plot::Figure steps_fig("|dLoss/dW| of the first and the last layer during training", "SGD step",
                         "norm");
  steps_fig.log_y = true;
  plot::Figure loss_fig("training loss", "SGD step", "mini-batch cross-entropy");
  plot::Csv csv({"network", "step", "layer", "grad_W_norm", "delta_norm", "loss"});

  fmt::print("Gradient flow: {} hidden layers of {}, spirals (1024 points), SGD lr {}, batch 32\n",
             kHidden, kWidth, lr);
  for (const char* act : {"sigmoid", "relu"}) {
    DeepNet net(act, 2, 2, 11);
    std::string colour = std::string(act) == "sigmoid" ? "#2563eb" : "#dc2626";
    nn::SGD opt(net.parameters(), {.lr = lr});
    nn::DataLoader loader(data, {.batch_size = 32, .shuffle = true, .seed = 5});
    const size_t L = net.layers.size();
    std::vector<plot::Series*> first_last = {
        &steps_fig.add(fmt::format("{}: layer 1", act), false, colour),
        &steps_fig.add(fmt::format("{}: layer {}", act, L), true, colour)};
    auto& loss_series = loss_fig.add(act, false, colour);
    int step = 0;
    set_grad_norm_tracing(true);
    // A progress bar on stderr when it is a terminal (nn/train.h); results go to stdout after it.
    nn::ProgressOptions bar;
    bar.out = stderr;
    bar.every = 0;  // when not on a terminal: no lines at all
    nn::Progress progress(epochs, loader.batches_per_epoch(), bar);
    std::vector<std::string> epoch_lines;
    for (int epoch = 0; epoch < epochs; ++epoch) {
      progress.start_epoch(epoch + 1);
      double epoch_loss = 0;
      int batches = 0;
      for (auto batch : loader) {
        opt.zero_grad();
        Tensor loss = nn::cross_entropy(net.forward(batch[0]), batch[1]);
        loss.backward();
        std::vector<double> gw(L), gd(L);
        for (size_t l = 0; l < L; ++l) {
          gw[l] = norm_of(net.layers[l]->weight.grad());
          // |delta(l)|, the gradient at z(l)
          gd[l] = net.z[l].grad_fn()->diagnostics.last_grad_norm;
          csv.row(act, step, l + 1, gw[l], gd[l], loss.item());
        }
        if (step == 0) {
          auto& s = layers_fig.add(fmt::format("{}: |dLoss/dW(l)|", act), false, colour);
          auto& d = layers_fig.add(fmt::format("{}: |delta(l)|", act), true, colour);
          fmt::print("\n{} network, first step: gradient norms from the output back to the input\n",
                     act);
          for (size_t l = 0; l < L; ++l) {
            s.x.push_back(l + 1), s.y.push_back(gw[l]);
            d.x.push_back(l + 1), d.y.push_back(gd[l]);
          }
          print_norms(gw, gd);
        }
        first_last[0]->x.push_back(step), first_last[0]->y.push_back(gw[0]);
        first_last[1]->x.push_back(step), first_last[1]->y.push_back(gw[L - 1]);
        loss_series.x.push_back(step), loss_series.y.push_back(loss.item());
        opt.step();
        epoch_loss += loss.item();
        progress.step(loss.item(), batch[0].size(0));
        ++batches;
        ++step;
      }
      if ((epoch + 1) % 5 == 0)
        epoch_lines.push_back(fmt::format("  epoch {:>2}: mean training loss {:.4f}", epoch + 1,
                                          epoch_loss / batches));
    }
    if (progress.interactive()) progress.end_epoch(act);
    for (const auto& line : epoch_lines) fmt::print("{}\n", line);
    set_grad_norm_tracing(false);
  }

  // Exploding gradients: the ReLU network again, every initial weight doubled. Its first step only:
  // the error doubles, roughly, at each layer on its way back, and so does the forward signal; one
  // SGD step with such gradients throws the network far off.
  {
    DeepNet net("relu", 2, 2, 11, 2.0);
    nn::SGD opt(net.parameters(), {.lr = lr});
    nn::DataLoader loader(data, {.batch_size = 32, .shuffle = true, .seed = 5});
    const size_t L = net.layers.size();
    set_grad_norm_tracing(true);
    std::vector<double> losses;
    std::vector<double> gw(L), gd(L);
    for (auto batch : loader) {
      opt.zero_grad();
      Tensor loss = nn::cross_entropy(net.forward(batch[0]), batch[1]);
      loss.backward();
      losses.push_back(loss.item());
      if (losses.size() == 1)
        for (size_t l = 0; l < L; ++l) {
          gw[l] = norm_of(net.layers[l]->weight.grad());
          gd[l] = net.z[l].grad_fn()->diagnostics.last_grad_norm;
          csv.row("relu_x2", 0, l + 1, gw[l], gd[l], loss.item());
        }
      if (losses.size() == 4) break;
      opt.step();
    }
    set_grad_norm_tracing(false);
    const std::string colour = "#d97706";
    auto& s = layers_fig.add("relu, weights x2: |dLoss/dW(l)|", false, colour);
    auto& d = layers_fig.add("relu, weights x2: |delta(l)|", true, colour);
    for (size_t l = 0; l < L; ++l) {
      s.x.push_back(l + 1), s.y.push_back(gw[l]);
      d.x.push_back(l + 1), d.y.push_back(gd[l]);
    }
    fmt::print(
        "\nrelu network with every initial weight doubled, first step: gradient norms from the "
        "output back to the input\n");
    print_norms(gw, gd);
    fmt::print("  |delta| layer 1 / layer {}: {:.2e}\n", L, gd[0] / gd[L - 1]);
    fmt::print("  mini-batch loss of its first {} SGD steps (lr {}): {:.4g}\n", losses.size(), lr,
               fmt::join(losses, ", "));
  }
  layers_fig.save(dir + "/gradient_flow_layers.svg");
  steps_fig.save(dir + "/gradient_flow_steps.svg");
  loss_fig.save(dir + "/gradient_flow_loss.svg");
  csv.save(dir + "/gradient_flow.csv");
  fmt::print(
      "\nwrote {0}/gradient_flow_layers.svg, {0}/gradient_flow_steps.svg, "
      "{0}/gradient_flow_loss.svg, {0}/gradient_flow.csv\n",
      dir);
}
