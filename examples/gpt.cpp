// A byte-level GPT, pretrained and fine-tuned on the engine (issue 5). See docs/gpt.md.
//
//   gpt train    [--data FILE] [--steps N] [--out CKPT] [--layers L] [--heads H] [--dim C]
//                [--context T] [--batch B] [--accum K] [--lr LR] [--warmup W] [--eval-every E]
//                [--seed S] [--log CSV] [--save-every N] [--resume]
//   gpt sample   --from CKPT [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]
//   gpt finetune --from CKPT --data FILE [--steps N] [--out CKPT2] [--lora-rank R]
//                [--lora-alpha A] [--batch B] [--accum K] [--lr LR] [--warmup W] [--eval-every E]
//                [--seed S] [--log CSV]
//   gpt plot     --out SVG [--title T] CSV[=label]...
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
// same model. Without --data it trains on examples/data/world.txt. The last line is `final val_loss
// <x>`.
//
// --save-every N writes the whole training state every N steps to CKPT minus .safetensors plus
// .state.safetensors (atomically: model, AdamW moments and step counts, the step reached, the
// state of the random generator that draws the batches). --resume continues from that file: a
// run killed at any moment and resumed with the same options ends with the same bytes in CKPT as
// a run never stopped (tests/gpt_resume.sh kills one with SIGKILL). --kill-at-step N is for that
// test: the process sends itself SIGKILL in the middle of step N.
//
// finetune: loads CKPT, measures its loss on the held-out part of the new text, then trains every
// parameter (full fine-tuning) or, with --lora-rank, only low-rank adapters on the attention and
// MLP projections. With LoRA it saves the merged model to CKPT2 and the adapters alone to CKPT2
// (minus .safetensors) + .lora.safetensors. The last line is `final val_loss <x> base val_loss <y>
// trainable <p> of <q>`.
//
// --log writes one CSV row per logged step (train loss, validation loss when measured, lr,
// tokens/s); `gpt plot` draws the losses of one or more such files as an SVG.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data_parallel.h"
#include "nn/nn.h"
#include "plot.h"

#ifndef EXAMPLES_DATA_DIR
#define EXAMPLES_DATA_DIR "examples/data"
#endif

using namespace ag;

namespace {

// A mistake on the command line (exit status 2, with the usage).
class UsageError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* kUsage =
    "usage:\n"
    "  gpt train    [--data FILE] [--steps N] [--out CKPT] [--layers L] [--heads H] [--dim C]\n"
    "               [--context T] [--batch B] [--accum K] [--lr LR] [--warmup W]\n"
    "               [--eval-every E] [--seed S] [--log CSV] [--save-every N] [--resume]\n"
    "  gpt sample   --from CKPT [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K]\n"
    "               [--seed S]\n"
    "  gpt finetune --from CKPT --data FILE [--steps N] [--out CKPT2] [--lora-rank R]\n"
    "               [--lora-alpha A] [--batch B] [--accum K] [--lr LR] [--warmup W]\n"
    "               [--eval-every E] [--seed S] [--log CSV]\n"
    "  gpt plot     --out SVG [--title T] CSV[=label]...\n"
    "  train and finetune also take --distributed (data-parallel over MPI, as under mpirun)\n";

// "--name value" options of one subcommand. Every option must be known to the subcommand and given
// once; values are checked when read.
class Options {
 public:
  // `flags` are options without a value ("--resume").
  Options(const std::string& command, int argc, char** argv, const std::set<std::string>& known,
          const std::set<std::string>& flags = {})
      : command_(command) {
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) {
        positional_.push_back(a);
        continue;
      }
      std::string name = a.substr(2);
      if (flags.count(name)) {
        if (!flags_.insert(name).second)
          throw UsageError(fmt::format("gpt {}: option {} given twice", command, a));
        continue;
      }
      if (!known.count(name)) {
        std::string list;
        for (auto& k : known) list += " --" + k;
        for (auto& k : flags) list += " --" + k;
        throw UsageError(fmt::format("gpt {}: unknown option {} (known:{})", command, a, list));
      }
      if (i + 1 >= argc)
        throw UsageError(fmt::format("gpt {}: option {} needs a value", command, a));
      if (values_.count(name))
        throw UsageError(fmt::format("gpt {}: option {} given twice", command, a));
      values_[name] = argv[++i];
    }
  }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  const std::vector<std::string>& positional() const { return positional_; }

  std::string text(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  std::string required(const std::string& name) const {
    if (!has(name)) throw UsageError(fmt::format("gpt {}: --{} is required", command_, name));
    return values_.at(name);
  }
  int64_t integer(const std::string& name, int64_t fallback, int64_t min = 0) const {
    if (!has(name)) return fallback;
    const std::string& s = values_.at(name);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != s.size())
      throw UsageError(fmt::format("gpt {}: --{} expects an integer, got '{}'", command_, name, s));
    if (v < min)
      throw UsageError(
          fmt::format("gpt {}: --{} must be at least {}, got {}", command_, name, min, v));
    return v;
  }
  double number(const std::string& name, double fallback, double min = 0) const {
    if (!has(name)) return fallback;
    const std::string& s = values_.at(name);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != s.size() || !std::isfinite(v))
      throw UsageError(fmt::format("gpt {}: --{} expects a number, got '{}'", command_, name, s));
    if (v < min)
      throw UsageError(
          fmt::format("gpt {}: --{} must be at least {}, got {}", command_, name, min, v));
    return v;
  }

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

void no_positional(const Options& o, const std::string& command) {
  if (!o.positional().empty())
    throw UsageError(fmt::format("gpt {}: unexpected argument '{}'", command, o.positional()[0]));
}

// ---- checkpoints: safetensors with the model configuration in the metadata ----

using Metadata = nn::Metadata;

std::shared_ptr<nn::GPT> load_model(const std::string& path) {
  if (!std::filesystem::exists(path)) fail<IOError>("checkpoint '{}' does not exist", path);
  return nn::load_gpt(path);
}

// ---- data ----

std::string default_data() { return std::string(EXAMPLES_DATA_DIR) + "/world.txt"; }

// Train and validation (last 10%) windows of a text file.
std::pair<nn::TextDataset, nn::TextDataset> load_text(const std::string& path, int64_t context) {
  std::string text = nn::read_text_file(path);
  // The validation part must hold at least one window of context + 1 bytes.
  if (static_cast<int64_t>(text.size()) < 20 * (context + 1))
    fail<ValueError>("{}: {} bytes is too short for windows of {} bytes (need at least {})", path,
                     text.size(), context + 1, 20 * (context + 1));
  return nn::TextDataset::split(nn::encode_tensor(nn::ByteTokenizer(), text), context, 0.1);
}

// Mean next-byte cross-entropy over consecutive windows of `data` (at most max_batches batches).
double evaluate(nn::GPT& model, const nn::TextDataset& data, int64_t batch, int64_t max_batches) {
  NoGradGuard ng;
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
};

struct TrainResult {
  double val_loss = 0;
  double tokens_per_s = 0;
};

TrainResult train_loop(nn::GPT& model, const nn::TextDataset& train, const nn::TextDataset& val,
                       const TrainSettings& s, examples::DataParallel& dp) {
  dp.attach(model);  // several ranks: rank 0's weights everywhere, gradients averaged
  // Decay the matrices (and the tied embedding), not the biases and LayerNorm gains.
  std::vector<Tensor> decay, no_decay;
  for (auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  std::vector<Tensor> trainable = decay;
  trainable.insert(trainable.end(), no_decay.begin(), no_decay.end());
  nn::AdamW opt(decay, {.lr = s.lr, .beta2 = 0.95, .weight_decay = s.weight_decay});
  if (!no_decay.empty()) opt.add_param_group(no_decay, [](nn::AdamOptions& o) { o.weight_decay = 0; });
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

  using Clock = std::chrono::steady_clock;
  model.train();
  for (int64_t step = first_step; step <= s.steps; ++step) {
    auto t0 = Clock::now();
    opt.zero_grad();
    double step_loss = 0;
    for (int64_t k = 0; k < s.accum; ++k) {
      auto [x, y] = train.sample(s.batch, gen);
      Tensor loss = model.loss(x, y);
      step_loss += loss.item() / static_cast<double>(s.accum);
      if (s.accum > 1) loss = mul(loss, 1.0 / static_cast<double>(s.accum));
      dp.set_sync(k == s.accum - 1);  // communicate on the last micro-batch only
      loss.backward();
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
      val_loss = evaluate(model, val, s.batch, s.eval_batches);
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
  if (std::isnan(val_loss)) val_loss = evaluate(model, val, s.batch, s.eval_batches);
  TrainResult r;
  r.val_loss = val_loss;
  r.tokens_per_s = static_cast<double>(tokens_per_step * s.steps) / train_seconds;
  fmt::print("trained {} steps of {} tokens in {:.1f} s: {:.0f} tokens/s\n", s.steps,
             tokens_per_step, train_seconds, r.tokens_per_s);
  return r;
}

TrainSettings read_settings(const Options& o, const TrainSettings& defaults) {
  TrainSettings s = defaults;
  s.steps = o.integer("steps", s.steps, 1);
  s.batch = o.integer("batch", s.batch, 1);
  s.accum = o.integer("accum", s.accum, 1);
  s.lr = o.number("lr", s.lr, 0);
  s.warmup = o.integer("warmup", std::min(s.warmup, s.steps / 10), 0);
  s.eval_every = o.integer("eval-every", s.eval_every, 0);
  s.seed = static_cast<uint64_t>(o.integer("seed", 0, 0));
  s.log_path = o.text("log", "");
  s.save_every = o.integer("save-every", 0, 0);
  s.resume = o.flag("resume");
  s.kill_at_step = o.integer("kill-at-step", 0, 0);
  return s;
}

const std::set<std::string> kTrainOptions = {"steps",      "batch", "accum", "lr",  "warmup",
                                             "eval-every", "seed",  "log",   "out", "data"};

// ---- subcommands ----

// Where `gpt train --out CKPT` keeps its training state.
std::string state_path(const std::string& out) {
  std::filesystem::path p(out);
  if (p.extension() == ".safetensors") p.replace_extension();
  return p.string() + ".state.safetensors";
}

int cmd_train(int argc, char** argv, examples::DataParallel& dp) {
  std::set<std::string> known = kTrainOptions;
  known.insert({"layers", "heads", "dim", "context", "save-every", "kill-at-step"});
  Options o("train", argc, argv, known, {"resume"});
  no_positional(o, "train");
  TrainSettings s = read_settings(o, TrainSettings{});
  nn::GPTConfig c;  // gpt-mini by default
  c.n_layer = o.integer("layers", c.n_layer, 1);
  c.n_head = o.integer("heads", c.n_head, 1);
  c.d_model = o.integer("dim", c.d_model, 1);
  c.context = o.integer("context", c.context, 1);
  c.seed = s.seed;
  c.validate();
  std::string data = o.text("data", default_data());
  std::string out = o.text("out", "gpt.safetensors");
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

  auto [train, val] = load_text(data, c.context);
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

int cmd_sample(int argc, char** argv) {
  Options o("sample", argc, argv, {"from", "prompt", "tokens", "temperature", "top-k", "seed"});
  no_positional(o, "sample");
  std::string from = o.required("from");
  std::string prompt = o.text("prompt", "\n");
  if (prompt.empty()) throw UsageError("gpt sample: --prompt must not be empty");
  int64_t n = o.integer("tokens", 200, 0);
  double temperature = o.number("temperature", 0.8, 0);
  if (!(temperature > 0)) throw UsageError("gpt sample: --temperature must be positive");
  int64_t top_k = o.integer("top-k", 0, 0);
  Generator gen(static_cast<uint64_t>(o.integer("seed", 0, 0)));
  auto model = load_model(from);
  Tensor out =
      model->generate(nn::encode_tensor(nn::ByteTokenizer(), prompt), n, temperature, top_k, &gen);
  fmt::print("{}\n", nn::decode_tensor(nn::ByteTokenizer(), out));
  return 0;
}

std::string adapters_path(const std::string& out) {
  std::filesystem::path p(out);
  if (p.extension() == ".safetensors") p.replace_extension();
  return p.string() + ".lora.safetensors";
}

int cmd_finetune(int argc, char** argv, examples::DataParallel& dp) {
  std::set<std::string> known = kTrainOptions;
  known.insert({"from", "lora-rank", "lora-alpha"});
  Options o("finetune", argc, argv, known);
  no_positional(o, "finetune");
  std::string from = o.required("from");
  std::string data = o.required("data");
  std::string out = o.text("out", "gpt-finetuned.safetensors");
  dp.print_only_on_root();
  bool lora = o.has("lora-rank");
  TrainSettings defaults;
  defaults.steps = 300;
  defaults.lr = lora ? 2e-3 : 3e-4;
  defaults.eval_every = 100;
  TrainSettings s = read_settings(o, defaults);
  if (lora) s.weight_decay = 0.0;  // the adapters start at zero update; nothing to decay towards

  auto model = load_model(from);
  auto [train, val] = load_text(data, model->config().context);
  fmt::print("base model {}: {} parameters; new text {}: {} bytes for training, {} held out\n",
             from, model->num_parameters(), data, train.size(), val.size());
  double base = evaluate(*model, val, s.batch, s.eval_batches);
  fmt::print("base val_loss {:.4f} on the new text, before fine-tuning\n", base);

  nn::LoRAConfig lc;
  if (lora) {
    lc.rank = o.integer("lora-rank", 8, 1);
    lc.alpha = o.number("lora-alpha", 2.0 * static_cast<double>(lc.rank), 0);
    lc.seed = s.seed;
    int64_t layers = nn::apply_lora(*model, lc);
    fmt::print("LoRA: rank {}, alpha {}, on {} Linear layers ({}); base weights frozen\n", lc.rank,
               lc.alpha, layers, fmt::join(lc.targets, ", "));
  } else if (o.has("lora-alpha")) {
    throw UsageError("gpt finetune: --lora-alpha needs --lora-rank");
  }
  int64_t trainable = model->num_parameters(true), total = model->num_parameters();
  fmt::print("trainable parameters: {} of {} ({:.2f}%)\n", trainable, total,
             100.0 * static_cast<double>(trainable) / static_cast<double>(total));

  if (dp.on())
    fmt::print("data parallel: {} ranks, {} x {} windows per rank per step\n", dp.world(), s.accum,
               s.batch);
  TrainResult r = train_loop(*model, train, val, s, dp);
  Metadata extra = {{"gpt.finetuned_from", std::filesystem::path(from).filename().string()},
                    {"gpt.trained_on", std::filesystem::path(data).filename().string()},
                    {"gpt.steps", std::to_string(s.steps)}};
  double final_loss = r.val_loss;
  if (lora) {
    Metadata am = nn::gpt_config_metadata(model->config());
    am.insert(extra.begin(), extra.end());
    am["lora.rank"] = std::to_string(lc.rank);
    am["lora.alpha"] = fmt::format("{}", lc.alpha);
    if (dp.root()) nn::save_safetensors(adapters_path(out), nn::lora_state_dict(*model), am);
    fmt::print("saved the adapters alone to {}\n", adapters_path(out));
    nn::merge_lora(*model);
    final_loss = evaluate(*model, val, s.batch, s.eval_batches);
    fmt::print("merged the adapters into the base weights: val_loss {:.4f} (adapted {:.4f})\n",
               final_loss, r.val_loss);
  }
  extra["gpt.val_loss"] = fmt::format("{:.6f}", final_loss);
  if (dp.root()) nn::save_gpt(out, *model, extra);
  fmt::print("saved {}\n", out);
  fmt::print("final val_loss {:.4f} base val_loss {:.4f} trainable {} of {}\n", final_loss, base,
             trainable, total);
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

int cmd_plot(int argc, char** argv) {
  Options o("plot", argc, argv, {"out", "title"});
  std::string out = o.required("out");
  if (o.positional().empty()) throw UsageError("gpt plot: give at least one CSV file");
  plot::Figure fig(o.text("title", "GPT training"), "optimizer step", "cross-entropy (nats/byte)");
  for (const std::string& arg : o.positional()) {
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
  fig.save(out);
  fmt::print("wrote {}\n", out);
  return 0;
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
      try {
        return command == "train" ? cmd_train(argc, argv, dp) : cmd_finetune(argc, argv, dp);
      } catch (const UsageError& e) {  // the same on every rank: all return
        if (dp.root()) fmt::print(stderr, "{}\n{}", e.what(), kUsage);
        return 2;
      }
    });
  }
  try {
    if (distributed) throw UsageError("gpt: --distributed applies to train and finetune");
    examples::DataParallel one(false, argc, argv);
    if (command == "train") return cmd_train(argc, argv, one);
    if (command == "sample") return cmd_sample(argc, argv);
    if (command == "finetune") return cmd_finetune(argc, argv, one);
    if (command == "plot") return cmd_plot(argc, argv);
    if (command == "-h" || command == "--help" || command == "help") {
      fmt::print("{}", kUsage);
      return 0;
    }
    throw UsageError(command.empty() ? "gpt: missing subcommand"
                                     : fmt::format("gpt: unknown subcommand '{}'", command));
  } catch (const UsageError& e) {
    fmt::print(stderr, "{}\n{}", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "gpt {}: error: {}\n", command, e.what());
    return 1;
  }
}
