// A GPT, pretrained and fine-tuned on the engine (issues 5 and 25): our byte-level models, and
// GPT-2 models in the Hugging Face layout. See docs/gpt.md; `gpt --help` and `gpt SUBCOMMAND
// --help` list every option (parsed by CLI11).
//
//   gpt train    [--data FILE] [--steps N] [--out CKPT] [--layers L] [--heads H] [--dim C]
//                [--context T] [--batch B] [--accum K] [--lr LR] [--warmup W] [--eval-every E]
//                [--seed S] [--log CSV] [--save-every N] [--resume] [--checkpoint-activations]
//                [--precision float32|bf16] [--optimizer-state float32|bf16]
//   gpt sample   --from M [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--top-p P]
//                [--seed S] [--stop-at-eos] [--tokenizer DIR] [--adapters FILE]
//   gpt finetune --from M --data FILE [--steps N] [--out OUT] [--lora-rank R] [--lora-alpha A]
//                [--lora-targets GLOB,...] [--context T] [--batch B] [--accum K] [--lr LR]
//                [--warmup W] [--eval-every E] [--seed S] [--log CSV] [--tokenizer DIR]
//                [--memory-report] [--checkpoint-activations] [--precision float32|bf16]
//                [--optimizer-state float32|bf16]
//   gpt eval     --from M --data FILE --context N [--batch B] [--tokenizer DIR] [--adapters FILE]
//   gpt encode   [--tokenizer DIR] FILE
//   gpt decode   [--tokenizer DIR] FILE
//   gpt plot     --out SVG [--title T] CSV[=label]...
//
// M is our own checkpoint file (byte-level vocabulary) or a Hugging Face GPT-2 directory
// (config.json, model.safetensors and its tokenizer files). A directory's own tokenizer is used
// unless --tokenizer DIR names another; our checkpoints use the byte tokenizer. encode and decode
// use the byte tokenizer without --tokenizer.
//
// Exact outputs (scripts depend on them):
//   encode: one line, the ids of FILE's text separated by single spaces.
//   decode: FILE holds whitespace-separated ids; stdout is exactly their text, nothing added.
//   eval:   windows of N + 1 tokens at offsets 0, N, 2N, ... while they fit; the last line is
//           `loss <x>`, the mean next-token cross-entropy over all predicted positions (natural
//           log, 6 decimals).
//   sample: stdout is exactly the prompt followed by the generated text (settings and progress go
//           to stderr). --temperature 0 is greedy; --stop-at-eos stops at the tokenizer's
//           end-of-text token (GPT-2's <|endoftext|>), which is not printed.
//   train:  the last line is `final val_loss <x>`.
//   finetune: the last line is `final val_loss <x> base val_loss <y> trainable <p> of <q>`.
//
// train and finetune run data-parallel over MPI with --distributed, or when started by mpirun
// (`mpirun -np 2 gpt train ...`): each rank samples its own --batch windows per micro-batch (a
// global batch of batch x ranks), the gradients are averaged across ranks before clipping and the
// step, the logged training loss is the mean over ranks, and only rank 0 prints and writes files;
// every rank reads --from. See docs/distributed.md.
//
// train: AdamW (weight decay 0.1 on matrices, none on biases and LayerNorm gains), linear warmup
// then cosine decay to a tenth of the peak learning rate, the gradient's global norm clipped
// at 1.0, gradient accumulation over K micro-batches of B windows of T bytes. The last 10% of the
// file is held out; its loss is measured every E steps and at the end. The checkpoint is a
// safetensors file whose metadata holds the model configuration, so sample and finetune rebuild the
// same model. Without --data it trains on examples/data/world.txt.
//
// --save-every N writes the whole training state every N steps to CKPT minus .safetensors plus
// .state.safetensors (atomically: model, AdamW moments and step counts, the step reached, the
// state of the random generator that draws the batches). --resume continues from that file: a
// run killed at any moment and resumed with the same options ends with the same bytes in CKPT as
// a run never stopped (tests/gpt_resume.sh kills one with SIGKILL). --kill-at-step N is for that
// test: the process sends itself SIGKILL in the middle of step N.
//
// finetune: loads M, measures its loss on the held-out part of the new text, then trains every
// parameter (full fine-tuning) or, with --lora-rank, only low-rank adapters on the attention and
// MLP projections (--lora-targets: other layers by module-name glob, e.g. wte for the token
// embedding and the tied head). From our checkpoint, OUT is a checkpoint file; with LoRA it holds
// the merged model and the adapters alone go to OUT (minus .safetensors) + .lora.safetensors.
// From a GPT-2 directory, OUT is a GPT-2 directory (save_gpt2: loadable by Hugging Face
// transformers) holding the merged model and the tokenizer files, and with LoRA also
// OUT/adapters.safetensors. sample and eval --adapters FILE apply such adapters to M's weights.
//
// train and finetune --memory-report print, after training, the peak resident memory and how it
// splits: weights, gradients, optimizer state, saved activations, and the rest (MemoryReport).
//
// --checkpoint-activations (train and finetune): each transformer block's activations are
// recomputed during backward instead of kept (GPTConfig::checkpoint_activations): less memory for
// about a third more block compute, the same gradients. It is not part of the saved state: a run
// may be resumed with or without it.
//
// --precision bf16 (train and finetune): mixed precision (docs/mixed_precision.md): the frozen
// weights stored in bfloat16 (Module::frozen_to), the forward under AutocastGuard(bfloat16), the
// trained weights float32 master weights. --optimizer-state bf16: AdamW's moments in bfloat16.
//
// --log writes one CSV row per logged step (train loss, validation loss when measured, lr,
// tokens/s); `gpt plot` draws the losses of one or more such files as an SVG.
#include <fmt/format.h>
#include <sys/resource.h>
#include <CLI/CLI.hpp>

#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "data_parallel.h"
#include "nn/models/gpt2.h"
#include "nn/nn.h"
#include "nn/text/byte_tokenizer.h"
#include "nn/text/tokenizer.h"
#include "plot.h"

#ifndef EXAMPLES_DATA_DIR
#define EXAMPLES_DATA_DIR "examples/data"
#endif

using namespace ag;

namespace {

// A mistake on the command line that the parser cannot see (exit status 2).
class UsageError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- tokenizers and models given by --from / --tokenizer ----

using Metadata = nn::Metadata;

std::unique_ptr<nn::Tokenizer> tokenizer_from(const std::string& dir) {
  if (dir.empty()) return std::make_unique<nn::ByteTokenizer>();
  return nn::load_tokenizer(dir);
}

// Token ids as an int64 tensor [N].
Tensor id_tensor(const std::vector<int64_t>& ids) {
  return Tensor::from_vector(ids, {static_cast<int64_t>(ids.size())});
}

// A model and its tokenizer: our checkpoint file with the byte tokenizer, or a GPT-2 directory
// with its own tokenizer files; `tokenizer_dir` (unless empty) overrides either.
struct Model {
  std::shared_ptr<nn::GPT> gpt;
  std::unique_ptr<nn::Tokenizer> tokenizer;
  bool gpt2_directory = false;
};

// Puts the adapters that `gpt finetune --lora-rank` saved alone (with their alpha in the file's
// metadata) onto the base model and merges them into its weights.
void apply_saved_adapters(Model& m, const std::string& path) {
  Metadata meta;
  nn::StateDict adapters = nn::load_safetensors(path, &meta);
  auto alpha = meta.find("lora.alpha");
  if (alpha == meta.end())
    fail<ValueError>("'{}' has no lora.alpha in its metadata: not adapters saved by gpt finetune",
                     path);
  int64_t n = nn::load_lora(*m.gpt, adapters, std::stod(alpha->second));
  nn::merge_lora(*m.gpt);
  fmt::print(stderr, "adapters {}: {} layers, alpha {}, merged into the base weights\n", path, n,
             alpha->second);
}

// `adapters` (unless empty): a file of LoRA adapters to apply to the loaded model.
Model load_model(const std::string& from, const std::string& tokenizer_dir,
                 const std::string& adapters = "") {
  Model m;
  if (std::filesystem::is_directory(from)) {
    m.gpt = nn::load_gpt2(from);
    m.tokenizer = nn::load_tokenizer(tokenizer_dir.empty() ? from : tokenizer_dir);
    m.gpt2_directory = true;
  } else {
    if (!std::filesystem::exists(from)) fail<IOError>("checkpoint '{}' does not exist", from);
    m.gpt = nn::load_gpt(from);
    m.tokenizer = tokenizer_from(tokenizer_dir);
  }
  if (m.tokenizer->vocab_size() > m.gpt->config().vocab_size)
    fail<ValueError>("the {} tokenizer has {} ids, more than the vocabulary {} of model '{}'",
                     m.tokenizer->name(), m.tokenizer->vocab_size(), m.gpt->config().vocab_size,
                     from);
  if (!adapters.empty()) apply_saved_adapters(m, adapters);
  return m;
}

// ---- data ----

std::string default_data() { return std::string(EXAMPLES_DATA_DIR) + "/world.txt"; }

// "bytes" for the byte tokenizer, else "tokens".
std::string unit(const nn::Tokenizer& t) { return t.name() == "byte" ? "bytes" : "tokens"; }

// Train and validation (last 10%) windows of a text file.
std::pair<nn::TextDataset, nn::TextDataset> load_text(const std::string& path, int64_t context,
                                                      const nn::Tokenizer& tokenizer) {
  std::vector<int64_t> ids = tokenizer.encode(nn::read_text_file(path));
  // The validation part must hold at least one window of context + 1 tokens.
  if (static_cast<int64_t>(ids.size()) < 20 * (context + 1))
    fail<ValueError>("{}: {} {} is too short for windows of {} {} (need at least {})", path,
                     ids.size(), unit(tokenizer), context + 1, unit(tokenizer), 20 * (context + 1));
  return nn::TextDataset::split(id_tensor(ids), context, 0.1);
}

// Mean next-token cross-entropy over consecutive windows of `data` (at most max_batches batches;
// -1: all).
double evaluate(nn::GPT& model, const nn::TextDataset& data, int64_t batch, int64_t max_batches,
                bool bf16 = false) {
  NoGradGuard ng;
  AutocastGuard autocast(bf16 ? bfloat16 : float32);
  bool was_training = model.is_training();
  model.eval();
  double total = 0;
  int64_t count = 0;
  for (auto& [x, y] : data.windows(batch, max_batches)) {
    total += model.loss(x, y).item() * static_cast<double>(x.numel());
    count += x.numel();
  }
  model.train(was_training);
  return total / static_cast<double>(count);
}

// ---- the training loop shared by train and finetune ----

struct TrainSettings {
  int64_t steps = 1000;
  int64_t batch = 16;
  int64_t accum = 1;
  double lr = 1e-3;
  int64_t warmup = 100;
  double weight_decay = 0.1;
  int64_t eval_every = 200;
  int64_t eval_batches = 40;
  int64_t log_every = 50;
  uint64_t seed = 0;
  std::string log_path;  // CSV, optional
  // Training state: saved every save_every steps (0: never) to state_path, resumed from it.
  int64_t save_every = 0;
  bool resume = false;
  std::string state_path;
  Metadata run;              // what must not change between a run and its resumption
  int64_t kill_at_step = 0;  // testing: SIGKILL itself in the middle of this step
  bool memory_report = false;
  bool checkpoint_activations = false;  // recompute the blocks' activations in backward
  bool bf16 = false;                    // --precision bf16: mixed precision
  bool bf16_state = false;              // --optimizer-state bf16: AdamW's moments in bfloat16
};

// --memory-report: where a training run's memory goes (nn::StepMemory, read around every
// micro-batch), printed at the end.
struct MemoryReport {
  bool on = false;
  nn::StepMemory step;

  void before_forward() {
    if (on) step.before_forward();
  }
  void after_forward() {
    if (on) step.after_forward();
  }
  void after_backward(const std::vector<Tensor>& params) {
    if (on) step.after_backward(params);
  }
  void print(const nn::GPT& model, const nn::Optimizer& opt) const;
};

void MemoryReport::print(const nn::GPT& model, const nn::Optimizer& opt) const {
  if (!on) return;
  const nn::MemorySplit s = step.split(model.parameters(), opt);
  const int64_t peak = s.peak;
  auto mib = [](int64_t b) { return static_cast<double>(b) / (1 << 20); };
  fmt::print("memory report: peak resident {:.1f} MiB ({} bytes)\n", mib(peak), peak);
  const std::pair<const char*, int64_t> rows[] = {{"weights", s.weights},
                                                  {"gradients", s.gradients},
                                                  {"optimizer state", s.optimizer_state},
                                                  {"saved activations", s.activations},
                                                  {"workspace and the rest", s.rest()}};
  for (auto& [what, b] : rows)
    fmt::print("  {:<23} {:>9.1f} MiB {:>6.1f}%  {} bytes\n", what, mib(b),
               100.0 * static_cast<double>(b) / static_cast<double>(peak), b);
}

struct TrainResult {
  double val_loss = 0;
  double tokens_per_s = 0;
};

TrainResult train_loop(nn::GPT& model, const nn::TextDataset& train, const nn::TextDataset& val,
                       const TrainSettings& s, examples::DataParallel& dp) {
  dp.attach(model);  // several ranks: rank 0's weights everywhere, gradients averaged
  model.set_checkpoint_activations(s.checkpoint_activations);
  // Mixed precision: the weights that are not trained are kept in bfloat16; the trained ones stay
  // float32 (master weights) and are used in bfloat16 by the matrix products (AutocastGuard).
  if (s.bf16) model.frozen_to(bfloat16);
  // Decay the matrices (and the tied embedding), not the biases and LayerNorm gains.
  std::vector<Tensor> decay, no_decay;
  for (auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  std::vector<Tensor> trainable = decay;
  trainable.insert(trainable.end(), no_decay.begin(), no_decay.end());
  nn::AdamW opt(decay, {.lr = s.lr, .beta2 = 0.95, .weight_decay = s.weight_decay});
  if (!no_decay.empty())
    opt.add_param_group(no_decay, [](nn::AdamOptions& o) { o.weight_decay = 0; });
  if (s.bf16_state) opt.set_state_dtype(bfloat16);
  nn::CosineWarmupLR schedule(opt, std::min(s.warmup, s.steps), s.steps, 0.1);

  plot::Csv csv({"step", "tokens", "train_loss", "val_loss", "lr", "tokens_per_s"});
  // Each rank samples its own windows.
  Generator gen(s.seed + 1 + 1000003ULL * static_cast<uint64_t>(dp.rank()));
  const int64_t tokens_per_step = s.batch * s.accum * train.context() * dp.world();
  double train_seconds = 0, window_loss = 0, val_loss = NAN;
  int64_t window_steps = 0, first_step = 1;

  // The training state: model, optimizer, the step reached, the batch generator, the loss of the
  // steps not yet logged (so the resumed run logs the same lines), and the run's settings.
  auto save_state = [&](int64_t step) {
    if (!dp.root()) return;  // only rank 0 writes
    Metadata m = s.run;
    m["train.step"] = std::to_string(step);
    m["train.rng"] = gen.state();
    m["train.window_loss"] = fmt::format("{}", window_loss);  // shortest exact representation
    m["train.window_steps"] = std::to_string(window_steps);
    m["train.seconds"] = fmt::format("{}", train_seconds);
    nn::save_checkpoint(s.state_path, model, &opt, m);
  };
  if (s.resume && dp.on())
    fail<ValueError>(
        "--resume: not supported with --distributed yet (the state holds one rank's batch "
        "generator)");
  if (s.resume) {
    if (!std::filesystem::exists(s.state_path))
      fail<IOError>("--resume: no training state '{}' to resume from", s.state_path);
    nn::CheckpointInfo info = nn::load_checkpoint(s.state_path, model, &opt);
    const Metadata& m = info.metadata;
    auto get = [&](const std::string& key) -> std::string {
      auto it = m.find(key);
      if (it == m.end()) fail<ValueError>("{}: not a training state (no '{}')", s.state_path, key);
      return it->second;
    };
    for (auto& [key, value] : s.run)
      if (get(key) != value)
        fail<ValueError>(
            "{}: saved by a run with {} = '{}'; this one has '{}' (resume with the "
            "same options)",
            s.state_path, key, get(key), value);
    auto number = [&](const std::string& key) {
      std::string v = get(key);
      char* end = nullptr;
      double x = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !std::isfinite(x))
        fail<ValueError>("{}: '{}' is '{}', not a number", s.state_path, key, v);
      return x;
    };
    double done = number("train.step");
    if (done != std::floor(done) || done < 0 || done > static_cast<double>(s.steps))
      fail<ValueError>("{}: train.step {} is not a step of this run", s.state_path, done);
    first_step = static_cast<int64_t>(done) + 1;
    gen.set_state(get("train.rng"));
    window_loss = number("train.window_loss");
    window_steps = static_cast<int64_t>(number("train.window_steps"));
    train_seconds = number("train.seconds");
    for (int64_t t = 1; t < first_step; ++t) schedule.step();
    fmt::print("resumed from {} after step {}\n", s.state_path, first_step - 1);
  }

  MemoryReport memory;
  memory.on = s.memory_report;
  using Clock = std::chrono::steady_clock;
  model.train();
  for (int64_t step = first_step; step <= s.steps; ++step) {
    auto t0 = Clock::now();
    opt.zero_grad();
    double step_loss = 0;
    for (int64_t k = 0; k < s.accum; ++k) {
      auto [x, y] = train.sample(s.batch, gen);
      memory.before_forward();
      Tensor loss;
      {
        AutocastGuard autocast(s.bf16 ? bfloat16 : float32);
        loss = model.loss(x, y);
      }
      memory.after_forward();
      step_loss += loss.item() / static_cast<double>(s.accum);
      if (s.accum > 1) loss = mul(loss, 1.0 / static_cast<double>(s.accum));
      dp.set_sync(k == s.accum - 1);  // communicate on the last micro-batch only
      loss.backward();
      memory.after_backward(trainable);
    }
    dp.average_gradients();
    double grad_norm = nn::clip_grad_norm_(trainable, 1.0);
    double lr = opt.param_groups()[0].lr();
    opt.step();
    if (step == s.kill_at_step) std::raise(SIGKILL);  // mid-step: the update is not yet saved
    schedule.step();
    train_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    window_loss += step_loss;
    ++window_steps;

    bool eval_now = step == s.steps || (s.eval_every > 0 && step % s.eval_every == 0);
    bool log_now = eval_now || step % s.log_every == 0 || step == 1;
    bool save_now = s.save_every > 0 && step % s.save_every == 0;
    if (!log_now) {
      if (save_now) save_state(step);
      continue;
    }
    double tps = static_cast<double>(tokens_per_step * step) / train_seconds;
    double mean_loss = dp.mean(window_loss, static_cast<double>(window_steps));
    std::string val_text;
    if (eval_now) {
      val_loss = evaluate(model, val, s.batch, s.eval_batches, s.bf16);
      val_text = fmt::format("  val_loss {:.4f}", val_loss);
    }
    fmt::print("step {:>{}}/{}  loss {:.4f}{}  lr {:.2e}  grad_norm {:.2f}  {:.0f} tokens/s\n",
               step, std::to_string(s.steps).size(), s.steps, mean_loss, val_text, lr, grad_norm,
               tps);
    std::fflush(stdout);
    csv.row(step, step * tokens_per_step, mean_loss,
            eval_now ? fmt::format("{:.6f}", val_loss) : "", lr, tps);
    if (!s.log_path.empty() && dp.root()) csv.save(s.log_path);
    window_loss = 0;
    window_steps = 0;
    if (save_now) save_state(step);
  }
  // A run resumed from the state of its last step has nothing left to train: measure it here.
  if (std::isnan(val_loss)) val_loss = evaluate(model, val, s.batch, s.eval_batches, s.bf16);
  TrainResult r;
  r.val_loss = val_loss;
  r.tokens_per_s = static_cast<double>(tokens_per_step * s.steps) / train_seconds;
  fmt::print("trained {} steps of {} tokens in {:.1f} s: {:.0f} tokens/s\n", s.steps,
             tokens_per_step, train_seconds, r.tokens_per_s);
  memory.print(model, opt);
  return r;
}

// ---- subcommands: their options, then what they do ----

// The number in `s` if all of it is one finite number.
std::optional<double> finite_number(const std::string& s) {
  size_t used = 0;
  double v = NAN;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// A number option's check: a finite number >= min (CLI11's Range lets NaN through).
CLI::Validator at_least(double min) {
  return CLI::Validator(
      [min](std::string& s) {
        auto v = finite_number(s);
        if (!v) return fmt::format("expects a number, got '{}'", s);
        if (*v < min) return fmt::format("must be at least {}, got {}", min, s);
        return std::string();
      },
      fmt::format(">={}", min));
}

// --top-p's check: a number in (0, 1].
CLI::Validator probability() {
  return CLI::Validator(
      [](std::string& s) {
        auto v = finite_number(s);
        if (!v || !(*v > 0 && *v <= 1))
          return fmt::format("expects a number in (0, 1], got '{}'", s);
        return std::string();
      },
      "in (0, 1]");
}

// The options train and finetune share. `defaults` are the subcommand's; --warmup, --lr and
// --eval-every are resolved after parsing (see training_settings).
struct TrainArgs {
  TrainSettings s;
  std::string data, out, from, tokenizer;
  CLI::Option *warmup = nullptr, *lr = nullptr;
};

void add_training_options(CLI::App& cmd, TrainArgs& a) {
  cmd.add_option("--data", a.data, "text file to train on")->check(CLI::ExistingFile);
  cmd.add_option("--steps", a.s.steps, "optimizer steps")
      ->check(at_least(1))
      ->capture_default_str();
  cmd.add_option("--batch", a.s.batch, "windows per micro-batch")
      ->check(at_least(1))
      ->capture_default_str();
  cmd.add_option("--accum", a.s.accum, "micro-batches per step (gradient accumulation)")
      ->check(at_least(1))
      ->capture_default_str();
  a.lr = cmd.add_option("--lr", a.s.lr, "peak learning rate")->check(at_least(0));
  a.warmup = cmd.add_option("--warmup", a.s.warmup, "warmup steps (default min(100, steps/10))")
                 ->check(at_least(0));
  cmd.add_option("--eval-every", a.s.eval_every, "validation every E steps (0: only at the end)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd.add_option("--seed", a.s.seed, "seed of the batches (and of a new model or adapters)")
      ->capture_default_str();
  cmd.add_option("--log", a.s.log_path, "CSV of the logged steps");
  cmd.add_flag("--distributed")->description("data-parallel over MPI (as under mpirun)");
  cmd.add_flag("--memory-report", a.s.memory_report,
               "at the end, the peak resident memory and how it splits (weights, gradients, "
               "optimizer state, saved activations, workspace)");
  cmd.add_flag("--checkpoint-activations", a.s.checkpoint_activations,
               "recompute each block's activations in backward instead of keeping them");
  cmd.add_option_function<std::string>(
         "--precision", [&a](const std::string& v) { a.s.bf16 = v == "bf16"; },
         "float32, or bf16: mixed precision (bfloat16 matrix products and activations, float32 "
         "master weights, frozen weights stored in bfloat16)")
      ->check(CLI::IsMember({"float32", "bf16"}))
      ->default_str("float32");
  cmd.add_option_function<std::string>(
         "--optimizer-state", [&a](const std::string& v) { a.s.bf16_state = v == "bf16"; },
         "float32, or bf16: AdamW's moments stored in bfloat16 (half their memory)")
      ->check(CLI::IsMember({"float32", "bf16"}))
      ->default_str("float32");
}

// Where `gpt train --out CKPT` keeps its training state.
std::string state_path(const std::string& out) {
  std::filesystem::path p(out);
  if (p.extension() == ".safetensors") p.replace_extension();
  return p.string() + ".state.safetensors";
}

struct TrainCommand {
  TrainArgs a;
  nn::GPTConfig c;  // gpt-mini by default
};

void add_train(CLI::App& app, TrainCommand& t) {
  auto* cmd =
      app.add_subcommand("train", "pretrain a byte-level GPT; last line: final val_loss <x>");
  t.a.data = default_data();
  t.a.out = "gpt.safetensors";
  add_training_options(*cmd, t.a);
  cmd->add_option("--out", t.a.out, "checkpoint to write")->capture_default_str();
  cmd->add_option("--layers", t.c.n_layer, "transformer blocks")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--heads", t.c.n_head, "attention heads")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--dim", t.c.d_model, "d_model")->check(at_least(1))->capture_default_str();
  cmd->add_option("--context", t.c.context, "context length in bytes")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--save-every", t.a.s.save_every, "save the training state every N steps")
      ->check(at_least(0));
  cmd->add_flag("--resume", t.a.s.resume, "continue from the saved training state");
  cmd->add_option("--kill-at-step", t.a.s.kill_at_step, "testing: SIGKILL itself in step N")
      ->check(at_least(0))
      ->group("");  // hidden
}

// The learning-rate warmup defaults to min(100, steps / 10).
void resolve_warmup(TrainArgs& a, int64_t warmup_default) {
  if (a.warmup->count() == 0) a.s.warmup = std::min(warmup_default, a.s.steps / 10);
}

int run_train(TrainCommand& t, examples::DataParallel& dp) {
  TrainSettings& s = t.a.s;
  resolve_warmup(t.a, 100);
  nn::GPTConfig& c = t.c;
  c.seed = s.seed;
  c.validate();
  const std::string &data = t.a.data, &out = t.a.out;
  dp.print_only_on_root();
  s.state_path = state_path(out);
  s.run = nn::gpt_config_metadata(c);
  s.run.insert({{"train.data", std::filesystem::path(data).filename().string()},
                {"train.steps", std::to_string(s.steps)},
                {"train.batch", std::to_string(s.batch)},
                {"train.accum", std::to_string(s.accum)},
                {"train.lr", fmt::format("{}", s.lr)},
                {"train.warmup", std::to_string(s.warmup)},
                {"train.weight_decay", fmt::format("{}", s.weight_decay)},
                {"train.seed", std::to_string(s.seed)}});

  auto [train, val] = load_text(data, c.context, nn::ByteTokenizer());
  nn::GPT model(c);
  if (dp.on())
    fmt::print("data parallel: {} ranks, {} x {} windows per rank per step\n", dp.world(), s.accum,
               s.batch);
  fmt::print("data {}: {} bytes for training, {} held out for validation\n", data, train.size(),
             val.size());
  fmt::print("model: {} layers, {} heads, d_model {}, context {}, {} parameters\n", c.n_layer,
             c.n_head, c.d_model, c.context, model.num_parameters());
  fmt::print(
      "training: {} steps of {} x {} windows, lr {} (warmup {}, cosine), AdamW wd 0.1, "
      "clip 1.0\n",
      s.steps, s.accum, s.batch, s.lr, s.warmup);
  if (!s.resume) {
    double initial = evaluate(model, val, s.batch, s.eval_batches);
    fmt::print("initial val_loss {:.4f} (ln 256 = {:.4f})\n", initial, std::log(256.0));
  }
  TrainResult r = train_loop(model, train, val, s, dp);
  if (dp.root())  // only rank 0 writes (all ranks hold the same weights)
    nn::save_gpt(out, model,
                 {{"gpt.trained_on", std::filesystem::path(data).filename().string()},
                  {"gpt.steps", std::to_string(s.steps)},
                  {"gpt.val_loss", fmt::format("{:.6f}", r.val_loss)}});
  fmt::print("saved {}\n", out);
  fmt::print("final val_loss {:.4f}\n", r.val_loss);
  return 0;
}

struct SampleCommand {
  std::string from, tokenizer, adapters, prompt = "\n";
  int64_t tokens = 200;
  double temperature = 0.8, top_p = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 0;
  bool stop_at_eos = false;
};

void add_adapters_option(CLI::App& cmd, std::string& path) {
  cmd.add_option("--adapters", path,
                 "LoRA adapters saved by gpt finetune --lora-rank, applied to --from's weights")
      ->check(CLI::ExistingFile);
}

void add_sample(CLI::App& app, SampleCommand& c) {
  auto* cmd = app.add_subcommand(
      "sample", "continue a prompt; stdout is exactly the prompt and the generated text");
  cmd->add_option("--from", c.from, "checkpoint file or GPT-2 directory")->required();
  cmd->add_option("--prompt", c.prompt, "text to continue (default: a newline)");
  cmd->add_option("--tokens", c.tokens, "tokens to generate")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--temperature", c.temperature, "0: greedy")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--top-k", c.top_k, "keep the k most likely tokens (0: all)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--top-p", c.top_p, "keep the most likely tokens up to this probability")
      ->check(probability())
      ->capture_default_str();
  cmd->add_option("--seed", c.seed, "seed of the draws")->capture_default_str();
  cmd->add_flag("--stop-at-eos", c.stop_at_eos, "stop at the end-of-text token (GPT-2: 50256)");
  cmd->add_option("--tokenizer", c.tokenizer, "tokenizer directory instead of the model's own")
      ->check(CLI::ExistingDirectory);
  add_adapters_option(*cmd, c.adapters);
}

int run_sample(const SampleCommand& c) {
  if (c.prompt.empty()) throw UsageError("gpt sample: --prompt must not be empty");
  Model m = load_model(c.from, c.tokenizer, c.adapters);
  nn::GenerateOptions o;
  o.max_new_tokens = c.tokens;
  o.temperature = c.temperature;
  o.top_k = c.top_k;
  o.top_p = c.top_p;
  o.seed = c.seed;
  if (c.stop_at_eos) {
    o.stop_at = m.tokenizer->eos_id();
    if (!o.stop_at)
      throw UsageError(
          fmt::format("gpt sample: --stop-at-eos: the {} tokenizer has no end-of-text "
                      "token",
                      m.tokenizer->name()));
  }
  std::vector<int64_t> prompt = m.tokenizer->encode(c.prompt);
  fmt::print(stderr,
             "gpt sample: {} ({} parameters, {} tokenizer), prompt of {} tokens, {} new tokens, "
             "temperature {}, top-k {}, top-p {}, seed {}{}\n",
             c.from, m.gpt->num_parameters(), m.tokenizer->name(), prompt.size(), c.tokens,
             c.temperature, c.top_k, c.top_p, c.seed, c.stop_at_eos ? ", stop at end-of-text" : "");
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int64_t> all = m.gpt->generate(id_tensor(prompt), o).to_vector<int64_t>();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto added = std::span<const int64_t>(all).subspan(prompt.size());
  std::string text = c.prompt + m.tokenizer->decode(added);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  fmt::print(stderr, "\ngpt sample: {} tokens in {:.2f} s{}\n", added.size(), seconds,
             added.size() < static_cast<size_t>(c.tokens) ? " (stopped at end-of-text)" : "");
  return 0;
}

std::string adapters_path(const std::string& out) {
  std::filesystem::path p(out);
  if (p.extension() == ".safetensors") p.replace_extension();
  return p.string() + ".lora.safetensors";
}

struct FinetuneCommand {
  TrainArgs a;
  int64_t lora_rank = 0, context = 0;
  double lora_alpha = 0;
  std::vector<std::string> lora_targets;
  CLI::Option *rank = nullptr, *alpha = nullptr, *targets = nullptr, *out = nullptr;
};

void add_finetune(CLI::App& app, FinetuneCommand& f) {
  auto* cmd = app.add_subcommand(
      "finetune",
      "fine-tune a model on a text; last line: final val_loss <x> base val_loss <y> trainable <p> "
      "of <q>");
  f.a.s.steps = 300;
  f.a.s.eval_every = 100;
  add_training_options(*cmd, f.a);
  cmd->get_option("--data")->required();
  cmd->add_option("--from", f.a.from, "checkpoint file or GPT-2 directory")->required();
  f.out = cmd->add_option("--out", f.a.out,
                          "checkpoint to write (default gpt-finetuned.safetensors); from a GPT-2 "
                          "directory, a GPT-2 directory (default gpt-finetuned)");
  f.rank = cmd->add_option("--lora-rank", f.lora_rank, "train LoRA adapters of this rank only")
               ->check(at_least(1));
  f.alpha = cmd->add_option("--lora-alpha", f.lora_alpha, "LoRA scale numerator (default 2R)")
                ->check(at_least(0));
  f.targets = cmd->add_option("--lora-targets", f.lora_targets,
                              "module-name globs of the layers to adapt, comma-separated (default "
                              "*.attn.qkv,*.attn.proj,*.mlp.fc,*.mlp.proj; wte: the token "
                              "embedding and the tied head)")
                  ->delimiter(',');
  cmd->add_option("--context", f.context, "window length (default: the model's context)")
      ->check(at_least(1));
  cmd->add_option("--tokenizer", f.a.tokenizer, "tokenizer directory instead of the model's own")
      ->check(CLI::ExistingDirectory);
}

// LoRA on the model per the options; prints what it did. The configuration used.
nn::LoRAConfig apply_lora_options(const FinetuneCommand& f, nn::GPT& model) {
  nn::LoRAConfig lc;
  lc.rank = f.lora_rank;
  lc.alpha = f.alpha->count() ? f.lora_alpha : 2.0 * static_cast<double>(lc.rank);
  lc.seed = f.a.s.seed;
  if (f.targets->count()) lc.targets = f.lora_targets;
  int64_t layers = nn::apply_lora(model, lc);
  fmt::print("LoRA: rank {}, alpha {}, on {} layers ({}); base weights frozen\n", lc.rank, lc.alpha,
             layers, fmt::join(lc.targets, ", "));
  return lc;
}

// Writes the fine-tuned model (and with LoRA the adapters, then merges them); the final loss.
double save_finetuned(const FinetuneCommand& f, const Model& m, const nn::LoRAConfig* lora,
                      const nn::TextDataset& val, double adapted, examples::DataParallel& dp) {
  const TrainSettings& s = f.a.s;
  const std::string& out = f.a.out;
  Metadata extra = {{"gpt.finetuned_from", std::filesystem::path(f.a.from).filename().string()},
                    {"gpt.trained_on", std::filesystem::path(f.a.data).filename().string()},
                    {"gpt.steps", std::to_string(s.steps)}};
  double final_loss = adapted;
  if (lora) {
    Metadata am = nn::gpt_config_metadata(m.gpt->config());
    am.insert(extra.begin(), extra.end());
    am["lora.rank"] = std::to_string(lora->rank);
    am["lora.alpha"] = fmt::format("{}", lora->alpha);
    std::string path = m.gpt2_directory
                           ? (std::filesystem::path(out) / "adapters.safetensors").string()
                           : adapters_path(out);
    if (dp.root()) {
      if (m.gpt2_directory) std::filesystem::create_directories(out);
      nn::save_safetensors(path, nn::lora_state_dict(*m.gpt), am);
    }
    fmt::print("saved the adapters alone to {}\n", path);
    nn::merge_lora(*m.gpt);
    final_loss = evaluate(*m.gpt, val, s.batch, s.eval_batches, s.bf16);
    fmt::print("merged the adapters into the base weights: val_loss {:.4f} (adapted {:.4f})\n",
               final_loss, adapted);
  }
  extra["gpt.val_loss"] = fmt::format("{:.6f}", final_loss);
  if (dp.root()) {
    if (m.gpt2_directory)
      nn::save_gpt2(out, *m.gpt, m.tokenizer.get());
    else
      nn::save_gpt(out, *m.gpt, extra);
  }
  fmt::print("saved {}\n", out);
  return final_loss;
}

int run_finetune(FinetuneCommand& f, examples::DataParallel& dp) {
  bool lora = f.rank->count() > 0;
  if (!lora && f.alpha->count()) throw UsageError("gpt finetune: --lora-alpha needs --lora-rank");
  if (!lora && f.targets->count())
    throw UsageError("gpt finetune: --lora-targets needs --lora-rank");
  TrainSettings& s = f.a.s;
  if (f.a.lr->count() == 0) s.lr = lora ? 2e-3 : 3e-4;
  resolve_warmup(f.a, 100);
  if (lora) s.weight_decay = 0.0;  // the adapters start at zero update; nothing to decay towards
  dp.print_only_on_root();

  Model m = load_model(f.a.from, f.a.tokenizer);
  if (f.out->count() == 0)
    f.a.out = m.gpt2_directory ? "gpt-finetuned" : "gpt-finetuned.safetensors";
  int64_t context = f.context > 0 ? f.context : m.gpt->config().context;
  if (context > m.gpt->config().context)
    throw UsageError(fmt::format("gpt finetune: --context {} exceeds the model's context {}",
                                 context, m.gpt->config().context));
  auto [train, val] = load_text(f.a.data, context, *m.tokenizer);
  fmt::print("base model {}: {} parameters; new text {}: {} {} for training, {} held out\n",
             f.a.from, m.gpt->num_parameters(), f.a.data, train.size(), unit(*m.tokenizer),
             val.size());
  double base = evaluate(*m.gpt, val, s.batch, s.eval_batches);
  fmt::print("base val_loss {:.4f} on the new text, before fine-tuning\n", base);

  std::optional<nn::LoRAConfig> lc;
  if (lora) lc = apply_lora_options(f, *m.gpt);
  int64_t trainable = m.gpt->num_parameters(true), total = m.gpt->num_parameters();
  fmt::print("trainable parameters: {} of {} ({:.2f}%)\n", trainable, total,
             100.0 * static_cast<double>(trainable) / static_cast<double>(total));

  if (dp.on())
    fmt::print("data parallel: {} ranks, {} x {} windows per rank per step\n", dp.world(), s.accum,
               s.batch);
  TrainResult r = train_loop(*m.gpt, train, val, s, dp);
  double final_loss = save_finetuned(f, m, lc ? &*lc : nullptr, val, r.val_loss, dp);
  fmt::print("final val_loss {:.4f} base val_loss {:.4f} trainable {} of {}\n", final_loss, base,
             trainable, total);
  return 0;
}

struct EvalCommand {
  std::string from, data, tokenizer, adapters;
  int64_t context = 0, batch = 8;
};

void add_eval(CLI::App& app, EvalCommand& e) {
  auto* cmd = app.add_subcommand(
      "eval",
      "mean next-token cross-entropy of a text, in windows of N + 1 tokens at offsets 0, N, 2N, "
      "...; last line: loss <x>");
  cmd->add_option("--from", e.from, "checkpoint file or GPT-2 directory")->required();
  cmd->add_option("--data", e.data, "text file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--context", e.context, "N: predicted positions per window")
      ->required()
      ->check(at_least(1));
  cmd->add_option("--batch", e.batch, "windows per forward pass")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--tokenizer", e.tokenizer, "tokenizer directory instead of the model's own")
      ->check(CLI::ExistingDirectory);
  add_adapters_option(*cmd, e.adapters);
}

int run_eval(const EvalCommand& e) {
  Model m = load_model(e.from, e.tokenizer, e.adapters);
  if (e.context > m.gpt->config().context)
    throw UsageError(fmt::format("gpt eval: --context {} exceeds the model's context {}", e.context,
                                 m.gpt->config().context));
  std::vector<int64_t> ids = m.tokenizer->encode(nn::read_text_file(e.data));
  int64_t n = static_cast<int64_t>(ids.size());
  if (n < e.context + 1)
    fail<ValueError>("gpt eval: {} has {} tokens, fewer than one window of {} + 1", e.data, n,
                     e.context);
  nn::TextDataset windows(id_tensor(ids), e.context);
  int64_t count = (n - 1) / e.context;
  fmt::print("model {}: {} parameters, context {}, {} tokenizer\n", e.from, m.gpt->num_parameters(),
             m.gpt->config().context, m.tokenizer->name());
  fmt::print("data {}: {} tokens, {} windows of {} + 1 ({} predicted positions)\n", e.data, n,
             count, e.context, count * e.context);
  double loss = evaluate(*m.gpt, windows, e.batch, -1);
  fmt::print("loss {:.6f}\n", loss);
  return 0;
}

struct TokensCommand {
  std::string tokenizer, file;
};

void add_encode_decode(CLI::App& app, TokensCommand& enc, TokensCommand& dec) {
  auto* e = app.add_subcommand("encode", "the token ids of FILE's text, on one line");
  auto* d = app.add_subcommand("decode", "the text of the whitespace-separated token ids in FILE");
  for (auto [cmd, c] : {std::pair{e, &enc}, std::pair{d, &dec}}) {
    cmd->add_option("--tokenizer", c->tokenizer, "tokenizer directory (default: bytes)")
        ->check(CLI::ExistingDirectory);
    cmd->add_option("file", c->file, "FILE")->required()->check(CLI::ExistingFile);
  }
}

int run_encode(const TokensCommand& c) {
  auto tokenizer = tokenizer_from(c.tokenizer);
  fmt::print("{}\n", fmt::join(tokenizer->encode(nn::read_text_file(c.file)), " "));
  return 0;
}

// The ids in `text`: whitespace-separated decimal integers (ValueError naming the file otherwise).
std::vector<int64_t> parse_ids(const std::string& text, const std::string& file) {
  std::vector<int64_t> ids;
  std::istringstream words(text);
  for (std::string w; words >> w;) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), v);
    if (ec != std::errc() || end != w.data() + w.size())
      fail<ValueError>("gpt decode: {}: word {} '{}' is not a token id", file, ids.size() + 1, w);
    ids.push_back(v);
  }
  return ids;
}

int run_decode(const TokensCommand& c) {
  auto tokenizer = tokenizer_from(c.tokenizer);
  std::string text = tokenizer->decode(parse_ids(nn::read_text_file(c.file), c.file));
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

// Reads a CSV written by --log: the columns step, train_loss and val_loss.
struct Curve {
  std::vector<double> step, train, val_step, val;
};

Curve read_curve(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail<IOError>("gpt plot: cannot open '{}'", path);
  std::string line;
  std::getline(f, line);
  if (line.rfind("step,tokens,train_loss,val_loss", 0) != 0)
    fail<ValueError>("gpt plot: '{}' is not a CSV written by gpt --log", path);
  Curve c;
  while (std::getline(f, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    if (cells.size() < 4) continue;
    double step = std::stod(cells[0]);
    c.step.push_back(step);
    c.train.push_back(std::stod(cells[2]));
    if (!cells[3].empty()) {
      c.val_step.push_back(step);
      c.val.push_back(std::stod(cells[3]));
    }
  }
  return c;
}

struct PlotCommand {
  std::string out, title = "GPT training";
  std::vector<std::string> csvs;
};

void add_plot(CLI::App& app, PlotCommand& p) {
  auto* cmd = app.add_subcommand("plot", "draw the losses of --log CSV files as an SVG");
  cmd->add_option("--out", p.out, "SVG to write")->required();
  cmd->add_option("--title", p.title, "title")->capture_default_str();
  cmd->add_option("csv", p.csvs, "CSV[=label]...")->required();
}

int run_plot(const PlotCommand& p) {
  plot::Figure fig(p.title, "optimizer step", "cross-entropy (nats/byte)");
  for (const std::string& arg : p.csvs) {
    std::string path = arg, label = std::filesystem::path(arg).stem().string();
    if (auto eq = arg.find('='); eq != std::string::npos) {
      path = arg.substr(0, eq);
      label = arg.substr(eq + 1);
    }
    Curve c = read_curve(path);
    auto& t = fig.add(label + ": train");
    t.x = c.step;
    t.y = c.train;
    auto& v = fig.add(label + ": validation", true);
    v.x = c.val_step;
    v.y = c.val;
  }
  fig.save(p.out);
  fmt::print("wrote {}\n", p.out);
  return 0;
}

// Every subcommand's options.
struct Commands {
  TrainCommand train;
  SampleCommand sample;
  FinetuneCommand finetune;
  EvalCommand eval;
  TokensCommand encode, decode;
  PlotCommand plot;
};

// Parses the command line and runs the subcommand. Mistakes on the command line: the message on
// stderr (on rank 0 only), exit status 2; --help: the help on stdout, status 0.
int run(int argc, char** argv, examples::DataParallel& dp) {
  CLI::App app("A GPT on the engine: train, fine-tune, evaluate, sample, tokenize (docs/gpt.md)",
               "gpt");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::Throw);
  app.require_subcommand(1);
  auto cmds = std::make_unique<Commands>();
  add_train(app, cmds->train);
  add_sample(app, cmds->sample);
  add_finetune(app, cmds->finetune);
  add_eval(app, cmds->eval);
  add_encode_decode(app, cmds->encode, cmds->decode);
  add_plot(app, cmds->plot);
  try {
    app.parse(argc, argv);
    std::string name = app.get_subcommands().front()->get_name();
    if (name == "train") return run_train(cmds->train, dp);
    if (name == "finetune") return run_finetune(cmds->finetune, dp);
    if (name == "sample") return run_sample(cmds->sample);
    if (name == "eval") return run_eval(cmds->eval);
    if (name == "encode") return run_encode(cmds->encode);
    if (name == "decode") return run_decode(cmds->decode);
    return run_plot(cmds->plot);
  } catch (const CLI::ParseError& e) {
    if (!dp.root()) return e.get_exit_code() == 0 ? 0 : 2;
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const UsageError& e) {  // the same on every rank: all return
    if (dp.root()) fmt::print(stderr, "{}\nRun with --help for more information.\n", e.what());
    return 2;
  }
}

}  // namespace

// Removes every `flag` from argv; whether there was one.
bool take_flag(int& argc, char** argv, const std::string& flag) {
  int kept = 0;
  bool found = false;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && argv[i] == flag)
      found = true;
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  return found;
}

int main(int argc, char** argv) {
  bool distributed = take_flag(argc, argv, "--distributed");
  std::string command = argc > 1 ? argv[1] : "";
  bool trains = command == "train" || command == "finetune";
  if (trains && (distributed || examples::DataParallel::launched_by_mpirun())) {
    // Data-parallel: an error on one rank stops every rank (run prints it with the rank).
    return examples::DataParallel::run("gpt " + command, [&] {
      examples::DataParallel dp(true, argc, argv);
      return run(argc, argv, dp);
    });
  }
  try {
    if (distributed) {
      fmt::print(stderr, "gpt: --distributed applies to train and finetune\n");
      return 2;
    }
    static char help[] = "--help";
    if (command == "help") argv[1] = help;  // `gpt help` is `gpt --help`
    examples::DataParallel one(false, argc, argv);
    return run(argc, argv, one);
  } catch (const std::exception& e) {
    fmt::print(stderr, "gpt {}: error: {}\n", command, e.what());
    return 1;
  }
}
