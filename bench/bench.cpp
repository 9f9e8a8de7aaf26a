// The benchmark workloads of WORKLOADS.md:
//   bench perop|tiny|mlp784|gpt-mini|cnn|gpt2-124m|gpt2-generate|gpt2-weight-read [--steps N]
//         [--rss] [--json]
// and issue 26's fine-tuning memory workload (bench/finetune_memory.sh runs it):
//   bench gpt2-finetune [--size 124m|355m|774m|smoke] [--lora R] [--checkpoint] [--bf16]
//         [--optimizer-state-bf16] [--steps N] [--warmup N] [--rss] [--json]
// Prints `<workload> median <X> us` as its last line (X: median microseconds of one timed
// step, or of one recorded op for perop). Inputs are made before timing; 5 untimed warm-up steps
// (gpt2-finetune: --warmup N, default 5).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"

namespace {

struct Options {
  std::string workload;
  int steps = 200;
  // gpt2-finetune only: untimed steps before the timed ones, the model's size, the LoRA rank
  // (0: full fine-tuning), activation checkpointing.
  int warmup = 5;
  std::string size = "124m";
  int64_t lora_rank = 0;
  bool checkpoint = false;
  bool bf16 = false;        // mixed precision: frozen weights in bfloat16, autocast forward
  bool bf16_state = false;  // AdamW's moments in bfloat16
  bool rss = false;
  bool json = false;
};

long peak_rss_kib();

// Peak RSS seen after the first 100 timed steps (memory must stay flat from there on), or -1.
struct Timing {
  double median_us = 0;
  long rss_after_100_kib = -1;
};

Timing time_steps(const std::function<void()>& step, int steps, int warmup = 5) {
  for (int i = 0; i < warmup; ++i) step();
  std::vector<double> t;
  t.reserve(steps);
  Timing r;
  for (int i = 0; i < steps; ++i) {
    auto a = std::chrono::steady_clock::now();
    step();
    t.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
    if (i == 99) r.rss_after_100_kib = peak_rss_kib();
  }
  std::sort(t.begin(), t.end());
  r.median_us = t[t.size() / 2];
  return r;
}

long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// leaf x of 4 elements; y = x; 100 times y = y * 1.0001 + 0.1 (200 ops); y.sum().backward()
Timing perop(int steps) {
  ag::Tensor x = ag::randn({4}).requires_grad_();
  Timing r = time_steps(
      [&] {
        ag::Tensor y = x;
        for (int i = 0; i < 100; ++i) y = y * 1.0001 + 0.1;
        y.sum().backward();
      },
      steps);
  r.median_us /= 200.0;
  return r;
}

// MLP training step: zero grads, forward, cross-entropy on class indices, backward, SGD lr 0.01.
Timing mlp(const std::vector<int64_t>& sizes, const std::string& act, int64_t batch, int steps) {
  ag::manual_seed(0);
  auto model = ag::nn::make_mlp(sizes, act);
  ag::nn::SGD opt(model->parameters(), {.lr = 0.01});
  ag::Tensor x = ag::randn({batch, sizes.front()});
  ag::Tensor y = ag::randint(0, sizes.back(), {batch});
  return time_steps(
      [&] {
        opt.zero_grad();
        ag::nn::cross_entropy(model->forward(x), y).backward();
        opt.step();
      },
      steps);
}

// Timed training steps of a GPT on a fixed batch: zero_grad, loss, backward, step.
Timing gpt_steps(ag::nn::GPT& model, ag::nn::Optimizer& opt, const ag::Tensor& x,
                 const ag::Tensor& y, int steps) {
  return time_steps(
      [&] {
        opt.zero_grad();
        model.loss(x, y).backward();
        opt.step();
      },
      steps);
}

// gpt-mini: WORKLOADS.md's configuration, AdamW(lr 3e-4, wd 0.1), one step on a fixed batch.
Timing gpt_mini(int steps) {
  ag::nn::GPTConfig c;  // vocab 256, 4 layers, 4 heads, d 128, context 64, GELU tanh, no dropout
  ag::nn::GPT model(c);
  ag::nn::AdamW opt(model.parameters(), {.lr = 3e-4, .weight_decay = 0.1});
  ag::Generator g(0);
  ag::Tensor data = ag::randint(0, c.vocab_size, {16, c.context + 1}, &g);
  ag::Tensor x = ag::slice(data, 1, 0, c.context).contiguous();
  ag::Tensor y = ag::slice(data, 1, 1, c.context + 1).contiguous();
  return gpt_steps(model, opt, x, y, steps);
}

// GPT-2 small (WORKLOADS.md): vocab 50257, context 1024, 12 layers, 12 heads, d_model 768, GELU
// tanh, LayerNorm eps 1e-5, no dropout; weights N(0, 0.02).
ag::nn::GPTConfig gpt2_small() {
  return {.vocab_size = 50257, .n_layer = 12, .n_head = 12, .d_model = 768, .context = 1024};
}

// gpt2-124m: one training step (forward, cross-entropy over all B*T positions, backward, AdamW lr
// 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0, as llm.c's train_gpt2.c) at batch 4 x 64 random
// tokens. The first step, which allocates the optimizer state, is among the untimed warm-up steps.
Timing gpt2_124m(int steps) {
  ag::nn::GPT model(gpt2_small());
  ag::nn::AdamW opt(model.parameters(), {.lr = 1e-4, .weight_decay = 0.0});
  ag::Generator g(0);
  ag::Tensor data = ag::randint(0, 50257, {4, 65}, &g);
  ag::Tensor x = ag::slice(data, 1, 0, 64).contiguous();
  ag::Tensor y = ag::slice(data, 1, 1, 65).contiguous();
  // The step's arithmetic: 6 FLOPs per parameter and token (2 forward, 4 backward), all parameters
  // counted as in llm.c and nanoGPT, plus attention's two T x T products per layer (2 x 2 B T^2 C
  // forward, twice that backward).
  const double n = static_cast<double>(model.num_parameters()), b = 4, t = 64, c = 768, l = 12;
  std::printf(
      "gpt2-124m flops %.3f GFLOP per step (6 x %.0f parameters x %.0f tokens + attention)\n",
      (6 * n * b * t + 12 * l * b * t * t * c) / 1e9, n, b * t);
  return gpt_steps(model, opt, x, y, steps);
}

// The GPT-2 shapes of issue 26's fine-tuning table (vocab 50257, context 1024, GELU tanh, weights
// N(0, 0.02)): 124m (GPT-2 small), 355m (medium: 24 layers, 16 heads, d_model 1024), 774m (large:
// 36 layers, 20 heads, 1280), and smoke (2 layers, 2 heads, 64: checks the workload runs).
ag::nn::GPTConfig gpt2_shape(const std::string& size) {
  ag::nn::GPTConfig c = gpt2_small();
  if (size == "355m") {
    c.n_layer = 24, c.n_head = 16, c.d_model = 1024;
  } else if (size == "774m") {
    c.n_layer = 36, c.n_head = 20, c.d_model = 1280;
  } else if (size == "smoke") {
    c.n_layer = 2, c.n_head = 2, c.d_model = 64;
  } else if (size != "124m") {
    ag::fail<ag::ValueError>("bench gpt2-finetune: --size '{}' is not 124m, 355m, 774m or smoke",
                             size);
  }
  return c;
}

// The memory line of gpt2-finetune: where the step's bytes go (nn::StepMemory, the accounting of
// `gpt finetune --memory-report`) and the engine's buffer cache.
void print_step_memory(const ag::nn::StepMemory& mem, const std::vector<ag::Tensor>& weights,
                       const ag::nn::Optimizer& opt) {
  const ag::nn::MemorySplit s = mem.split(weights, opt);
  auto mib = [](double b) { return b / (1 << 20); };
  std::printf(
      "gpt2-finetune memory: weights %.1f MiB, gradients %.1f MiB, optimizer state %.1f MiB, saved "
      "activations %.1f MiB, engine buffer cache %.1f MiB, peak resident %.1f MiB\n",
      mib(static_cast<double>(s.weights)), mib(static_cast<double>(s.gradients)),
      mib(static_cast<double>(s.optimizer_state)), mib(static_cast<double>(s.activations)),
      mib(static_cast<double>(ag::memory_stats().cached_bytes)), mib(static_cast<double>(s.peak)));
}

// gpt2-finetune: one fine-tuning step of a GPT-2-shaped model (gpt2_shape) at batch 4 x 256 random
// tokens: forward, cross-entropy over all positions, backward, AdamW (lr 1e-4, betas 0.9/0.999,
// eps 1e-8, weight decay 0) over the trainable parameters only. With --lora R every parameter is
// frozen and rank-R adapters (alpha 2R) train on the attention and MLP projections (the default
// targets of apply_lora, as `gpt finetune --lora-rank`); --checkpoint recomputes each block's
// activations in backward; --bf16 is `gpt finetune --precision bf16` (frozen weights stored in
// bfloat16, the forward under AutocastGuard(bfloat16), float32 master weights for the trained
// ones); --optimizer-state-bf16 keeps AdamW's moments in bfloat16. Prints the parameter counts and
// where the bytes go (StepMemory).
Timing gpt2_finetune(const Options& o) {
  ag::nn::GPT model(gpt2_shape(o.size));
  int64_t adapted = 0;
  if (o.lora_rank > 0)
    adapted = ag::nn::apply_lora(
        model, {.rank = o.lora_rank, .alpha = 2.0 * static_cast<double>(o.lora_rank)});
  model.set_checkpoint_activations(o.checkpoint);
  if (o.bf16) model.frozen_to(ag::bfloat16);
  std::vector<ag::Tensor> trainable;
  for (const ag::Tensor& p : model.parameters())
    if (p.requires_grad()) trainable.push_back(p);
  ag::nn::AdamW opt(trainable, {.lr = 1e-4, .weight_decay = 0.0});
  if (o.bf16_state) opt.set_state_dtype(ag::bfloat16);
  ag::Generator g(0);
  ag::Tensor data = ag::randint(0, 50257, {4, 257}, &g);
  ag::Tensor x = ag::slice(data, 1, 0, 256).contiguous();
  ag::Tensor y = ag::slice(data, 1, 1, 257).contiguous();
  std::printf(
      "gpt2-finetune size %s: %lld parameters, %lld trainable (LoRA rank %lld on %lld layers), "
      "checkpointing %s, bf16 %s, optimizer state %s, batch 4 x 256\n",
      o.size.c_str(), static_cast<long long>(model.num_parameters()),
      static_cast<long long>(model.num_parameters(true)), static_cast<long long>(o.lora_rank),
      static_cast<long long>(adapted), o.checkpoint ? "on" : "off", o.bf16 ? "on" : "off",
      o.bf16_state ? "bfloat16" : "float32");
  ag::nn::StepMemory mem;
  float last_loss = 0;
  Timing r = time_steps(
      [&] {
        opt.zero_grad();
        mem.before_forward();
        ag::Tensor loss;
        {
          ag::AutocastGuard autocast(o.bf16 ? ag::bfloat16 : ag::float32);
          loss = model.loss(x, y);
        }
        mem.after_forward();
        loss.backward();
        mem.after_backward(trainable);
        opt.step();
        last_loss = loss.item<float>();
      },
      o.steps, o.warmup);
  std::printf("gpt2-finetune loss %.4f after %d steps\n", last_loss, o.warmup + o.steps);
  print_step_memory(mem, model.parameters(), opt);
  return r;
}

// The bound of one generated token: the median of 10 times reading every weight once from memory
// (a sum over all parameters, split across the OpenMP threads), in microseconds.
double weight_read_us(const std::vector<ag::Tensor>& params, int reps = 10) {
  std::vector<double> t;
  float total = 0;
  for (int rep = 0; rep <= reps; ++rep) {
    auto a = std::chrono::steady_clock::now();
    for (const ag::Tensor& p : params) {
      const float* d = p.data<float>();
      int64_t n = p.numel();
      float s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static)
      for (int64_t i = 0; i < n; ++i) s += d[i];
      total += s;
    }
    if (rep > 0)
      t.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  if (total == 12345.0f) std::printf("\n");  // keeps the sums
  return t[t.size() / 2];
}

// gpt2-weight-read: the bound above alone, as a row of bench/compare.sh (median of --steps reads).
Timing gpt2_weight_read(int steps) {
  ag::nn::GPT model(gpt2_small());
  return {.median_us = weight_read_us(model.parameters(), steps)};
}

// gpt2-generate: inference only, one sequence; a prompt of 64 random tokens runs once through the
// key/value cache (untimed), then each step is one new token: the forward of one position through
// the cache and the greedy choice (argmax) of the next. 64 new tokens per sequence, the sequence
// restarted (cache cleared, prompt rerun untimed) as often as the steps need; the figure is the
// median time of one new token.
Timing gpt2_generate(int steps) {
  ag::nn::GPT model(gpt2_small());
  model.eval();
  ag::NoGradGuard no_grad;
  ag::Generator g(0);
  ag::Tensor prompt = ag::randint(0, 50257, {1, 64}, &g);
  ag::nn::KVCache cache;
  ag::Tensor next;
  auto restart = [&] {
    cache.clear();
    next = ag::argmax(ag::slice(model.forward(prompt, &cache), 1, 63, 64), -1);
  };
  restart();
  int generated = 0;
  std::vector<double> t;
  Timing r;
  for (int i = 0; i < steps + 5; ++i) {
    if (generated == 64) {
      restart();
      generated = 0;
    }
    auto a = std::chrono::steady_clock::now();
    next = ag::argmax(model.forward(next, &cache), -1);
    (void)next.item<int64_t>();
    double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count();
    ++generated;
    if (i >= 5) t.push_back(us);
  }
  std::sort(t.begin(), t.end());
  r.median_us = t[t.size() / 2];
  std::printf(
      "weight-read median %.3f us (%.1f MB of float32 weights, read once, split across the "
      "threads)\n",
      weight_read_us(model.parameters()), 4e-6 * static_cast<double>(model.num_parameters()));
  return r;
}

// cnn: LeNet-5 on 28x28 single-channel images, batch 64 (WORKLOADS.md): conv 1->6 5x5 padding 2,
// ReLU, 2x2 max-pool, conv 6->16 5x5, ReLU, 2x2 max-pool, flatten (400), Linear 120, ReLU,
// Linear 84, ReLU, Linear 10; cross-entropy on class indices; SGD lr 0.01.
Timing cnn(int steps) {
  namespace nn = ag::nn;
  ag::manual_seed(0);
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(1, 6, 5, 1, 2), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Conv2d>(6, 16, 5),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(400, 120),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(120, 84),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(84, 10)});
  nn::SGD opt(model->parameters(), {.lr = 0.01});
  ag::Tensor x = ag::randn({64, 1, 28, 28});
  ag::Tensor y = ag::randint(0, 10, {64});
  return time_steps(
      [&] {
        opt.zero_grad();
        nn::cross_entropy(model->forward(x), y).backward();
        opt.step();
      },
      steps);
}

int usage() {
  std::fprintf(stderr, "usage: bench perop|tiny|mlp784|gpt-mini [--steps N] [--rss] [--json]\n");
  std::fprintf(
      stderr,
      "       bench cnn|gpt2-124m|gpt2-generate|gpt2-weight-read [--steps N] [--rss] [--json]\n");
  std::fprintf(
      stderr,
      "       bench gpt2-finetune [--size 124m|355m|774m|smoke] [--lora R] [--checkpoint]\n"
      "             [--bf16] [--optimizer-state-bf16] [--steps N] [--warmup N] [--rss] [--json]\n");
  return 2;
}

// The switches only gpt2-finetune takes, or null.
bool* finetune_flag(Options& o, const std::string& a) {
  if (a == "--checkpoint") return &o.checkpoint;
  if (a == "--bf16") return &o.bf16;
  if (a == "--optimizer-state-bf16") return &o.bf16_state;
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bool finetune_only = false;  // an option only gpt2-finetune takes was given
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) {
      o.steps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--warmup" && i + 1 < argc) {
      o.warmup = std::max(0, std::atoi(argv[++i]));
      finetune_only = true;
    } else if (a == "--size" && i + 1 < argc) {
      o.size = argv[++i];
      finetune_only = true;
    } else if (a == "--lora" && i + 1 < argc) {
      o.lora_rank = std::max(1, std::atoi(argv[++i]));
      finetune_only = true;
    } else if (bool* flag = finetune_flag(o, a)) {
      *flag = true;
      finetune_only = true;
    } else if (a == "--rss") {
      o.rss = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a.rfind("--", 0) == 0) {
      return usage();
    } else {
      o.workload = a;
    }
  }
  if (finetune_only && o.workload != "gpt2-finetune") return usage();
  Timing r;
  try {
    if (o.workload == "perop") {
      r = perop(o.steps);
    } else if (o.workload == "tiny") {
      r = mlp({2, 16, 16, 2}, "tanh", 8, o.steps);
    } else if (o.workload == "mlp784") {
      r = mlp({784, 256, 256, 10}, "relu", 64, o.steps);
    } else if (o.workload == "cnn") {
      r = cnn(o.steps);
    } else if (o.workload == "gpt-mini") {
      r = gpt_mini(o.steps);
    } else if (o.workload == "gpt2-124m") {
      r = gpt2_124m(o.steps);
    } else if (o.workload == "gpt2-generate") {
      r = gpt2_generate(o.steps);
    } else if (o.workload == "gpt2-weight-read") {
      r = gpt2_weight_read(o.steps);
    } else if (o.workload == "gpt2-finetune") {
      r = gpt2_finetune(o);
    } else {
      return usage();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench: %s\n", e.what());
    return 1;
  }
  long peak = peak_rss_kib();
  long growth = r.rss_after_100_kib < 0 ? -1 : peak - r.rss_after_100_kib;
  if (o.rss) {
    std::printf("peak_rss_kib %ld\n", peak);
    if (growth >= 0) std::printf("peak_rss_growth_after_100_steps_kib %ld\n", growth);
  }
  if (o.json)
    std::printf(
        "{\"workload\": \"%s\", \"median_us\": %.3f, \"steps\": %d, \"peak_rss_kib\": %ld, "
        "\"peak_rss_growth_after_100_steps_kib\": %ld}\n",
        o.workload.c_str(), r.median_us, o.steps, peak, growth);
  std::printf("%s median %.3f us\n", o.workload.c_str(), r.median_us);
  return 0;
}
