#include "nn/models/gpt.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "nn/init.h"
#include "nn/sequential.h"

namespace ag::nn {

void GPTConfig::validate() const {
  if (vocab_size <= 0 || n_layer <= 0 || n_head <= 0 || d_model <= 0 || context <= 0)
    fail<ValueError>(
        "GPTConfig: sizes must be positive (vocab {}, layers {}, heads {}, d_model {}, "
        "context {})",
        vocab_size, n_layer, n_head, d_model, context);
  if (d_model % n_head != 0)
    fail<ValueError>("GPTConfig: d_model {} is not divisible by n_head {}", d_model, n_head);
  if (!(dropout >= 0 && dropout < 1))
    fail<ValueError>("GPTConfig: dropout {} is outside [0, 1)", dropout);
  if (gelu != "tanh" && gelu != "none")
    fail<ValueError>("GPTConfig: gelu must be tanh or none, got '{}'", gelu);
  if (!(layer_norm_eps > 0 && std::isfinite(layer_norm_eps)))
    fail<ValueError>("GPTConfig: layer_norm_eps {} must be positive and finite", layer_norm_eps);
}

namespace {
// GPT-2 scales the initial weights of each residual branch's output projection by
// 1 / sqrt(2 n_layer): 2 n_layer branches add into the residual stream.
double residual_init_std(const GPTConfig& c) {
  return 0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layer));
}

AttentionOptions attention_options(const GPTConfig& c) {
  return {.d_model = c.d_model,
          .n_head = c.n_head,
          .dropout = c.dropout,
          .seed = c.seed + 101,
          .init_std = 0.02,
          .proj_init_std = residual_init_std(c)};
}
}  // namespace

MLPBlock::MLPBlock(const GPTConfig& c, Generator* gen) : gelu_(c.gelu) {
  fc = register_module("fc", normal_linear(c.d_model, 4 * c.d_model, 0.02, gen));
  proj =
      register_module("proj", normal_linear(4 * c.d_model, c.d_model, residual_init_std(c), gen));
}

Tensor MLPBlock::forward(const Tensor& x) { return proj->forward(gelu(fc->forward(x), gelu_)); }

TransformerBlock::TransformerBlock(const GPTConfig& c, Generator* gen) {
  ln1 = register_module("ln1", std::make_shared<LayerNorm>(c.d_model, c.layer_norm_eps));
  attn = register_module("attn", std::make_shared<CausalSelfAttention>(attention_options(c), gen));
  ln2 = register_module("ln2", std::make_shared<LayerNorm>(c.d_model, c.layer_norm_eps));
  mlp = register_module("mlp", std::make_shared<MLPBlock>(c, gen));
  drop_ = register_module("drop", std::make_shared<Dropout>(c.dropout, c.seed + 202));
}

Tensor TransformerBlock::forward(const Tensor& x, AttentionCache* cache) {
  Tensor h = add(x, drop_->forward(attn->forward(ln1->forward(x), cache)));
  return add(h, drop_->forward(mlp->forward(ln2->forward(h))));
}

GPT::GPT(const GPTConfig& c) : config_(c) {
  c.validate();
  Generator gen(c.seed);
  wte = register_module("wte", std::make_shared<Embedding>(c.vocab_size, c.d_model, &gen));
  wpe = register_module("wpe", std::make_shared<Embedding>(c.context, c.d_model, &gen));
  init::normal_(wte->weight, 0.0, 0.02, &gen);
  init::normal_(wpe->weight, 0.0, 0.02, &gen);
  auto list = register_module("blocks", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < c.n_layer; ++i) {
    blocks.push_back(std::make_shared<TransformerBlock>(c, &gen));
    list->push_back(blocks.back());
  }
  ln_f = register_module("ln_f", std::make_shared<LayerNorm>(c.d_model, c.layer_norm_eps));
}

Tensor GPT::hidden(const Tensor& tokens, KVCache* cache) {
  if (tokens.dim() != 2 || tokens.dtype() != int64)
    fail<ShapeError>("GPT: expected int64 tokens [B, T], got {} {}", dtype_name(tokens.dtype()),
                     tokens.shape());
  int64_t T = tokens.size(1), past = cache ? cache->length() : 0;
  if (T + past > config_.context || T == 0)
    fail<ShapeError>("GPT: sequence length {} must be in [1, context {}]", T + past,
                     config_.context);
  if (cache && cache->layers.empty()) cache->layers.resize(blocks.size());
  if (cache && cache->layers.size() != blocks.size())
    fail<ShapeError>("GPT: the cache holds {} layers, the model has {}", cache->layers.size(),
                     blocks.size());
  Tensor pos = add(arange(T, int64), scalar_tensor(static_cast<double>(past), int64));
  Tensor x = add(wte->forward(tokens), wpe->forward(pos));  // [B, T, C]
  bool ckpt = config_.checkpoint_activations && !cache && is_grad_enabled();
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (ckpt) {
      std::shared_ptr<TransformerBlock> block = blocks[i];
      x = checkpoint([block](const Tensor& t) { return block->forward(t, nullptr); }, x,
                     {.generators = block->generators()});
    } else {
      x = blocks[i]->forward(x, cache ? &cache->layers[i] : nullptr);
    }
  }
  return ln_f->forward(x);
}

Tensor GPT::forward(const Tensor& tokens, KVCache* cache) {
  return wte->project(hidden(tokens, cache));  // tied output projection: [B, T, V]
}

Tensor GPT::loss(const Tensor& tokens, const Tensor& targets) {
  if (!(tokens.shape() == targets.shape()))
    fail<ShapeError>("GPT::loss: tokens {} and targets {} differ in shape", tokens.shape(),
                     targets.shape());
  Tensor logits = forward(tokens);
  int64_t V = config_.vocab_size;
  return cross_entropy(reshape(logits, {-1, V}), reshape(targets, {-1}));
}

void GenerateOptions::validate(int64_t vocab_size) const {
  if (max_new_tokens < 0)
    fail<ValueError>("GenerateOptions: max_new_tokens must be >= 0, got {}", max_new_tokens);
  if (!(temperature >= 0) || std::isinf(temperature))
    fail<ValueError>("GenerateOptions: temperature must be finite and >= 0, got {}", temperature);
  if (top_k < 0) fail<ValueError>("GenerateOptions: top_k must be >= 0, got {}", top_k);
  if (!(top_p > 0 && top_p <= 1))
    fail<ValueError>("GenerateOptions: top_p must be in (0, 1], got {}", top_p);
  if (stop_at && (*stop_at < 0 || *stop_at >= vocab_size))
    fail<ValueError>("GenerateOptions: stop_at {} is outside the vocabulary [0, {})", *stop_at,
                     vocab_size);
  if (seed && generator) fail<ValueError>("GenerateOptions: give a seed or a generator, not both");
}

namespace {
// Keeps the tokens of largest probability, in decreasing order, until their sum reaches top_p.
void keep_top_p(std::vector<double>& p, double top_p) {
  std::vector<size_t> order(p.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  double sum = 0;
  size_t kept = 0;
  while (kept < order.size() && (kept == 0 || sum < top_p)) sum += p[order[kept++]];
  for (size_t i = kept; i < order.size(); ++i) p[order[i]] = 0;
  for (double& v : p) v /= sum;
}
}  // namespace

std::vector<double> sampling_distribution(std::span<const double> logits,
                                          const GenerateOptions& o) {
  if (logits.empty()) fail<ValueError>("sampling_distribution: empty logits");
  GenerateOptions sampling = o;
  sampling.stop_at.reset();  // not a question of this distribution
  sampling.validate(static_cast<int64_t>(logits.size()));
  std::vector<double> p(logits.size(), 0.0);
  size_t best = std::max_element(logits.begin(), logits.end()) - logits.begin();
  if (o.temperature == 0) {
    p[best] = 1;
    return p;
  }
  double floor = -INFINITY;  // logits below it are removed (top-k)
  if (o.top_k > 0 && o.top_k < static_cast<int64_t>(logits.size())) {
    std::vector<double> sorted(logits.begin(), logits.end());
    std::nth_element(sorted.begin(), sorted.begin() + (o.top_k - 1), sorted.end(),
                     std::greater<double>());
    floor = sorted[o.top_k - 1];
  }
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i)
    if (logits[i] >= floor) sum += p[i] = std::exp((logits[i] - logits[best]) / o.temperature);
  for (double& v : p) v /= sum;
  if (o.top_p < 1) keep_top_p(p, o.top_p);
  return p;
}

std::vector<double> GPT::last_logits(const std::vector<int64_t>& window, KVCache* cache) {
  Tensor in = Tensor::from_vector(window, {1, static_cast<int64_t>(window.size())});
  Tensor h = select(hidden(in, cache), 1, -1);  // [1, C]: only the last position
  return wte->project(h).to(float64).contiguous().to_vector<double>();
}

namespace {
// Sets a module's training mode back to what it was when the guard was made.
struct TrainingModeGuard {
  explicit TrainingModeGuard(Module& m) : module(m), was_training(m.is_training()) {}
  ~TrainingModeGuard() { module.train(was_training); }
  Module& module;
  bool was_training;
};

int64_t draw(const std::vector<double>& p, const GenerateOptions& o, Generator* gen) {
  if (o.temperature == 0) return std::max_element(p.begin(), p.end()) - p.begin();
  Tensor probs = Tensor::from_vector(p);
  return static_cast<int64_t>(multinomial(probs, 1, false, gen).item());
}
}  // namespace

Tensor GPT::generate(const Tensor& prompt, const GenerateOptions& o) {
  if (prompt.dim() != 1 || prompt.dtype() != int64 || prompt.numel() == 0)
    fail<ShapeError>("GPT::generate: prompt must be a non-empty int64 vector, got {} {}",
                     dtype_name(prompt.dtype()), prompt.shape());
  o.validate(config_.vocab_size);
  std::optional<Generator> seeded;
  if (o.seed) seeded.emplace(*o.seed);
  Generator* gen = o.generator ? o.generator : seeded ? &*seeded : nullptr;
  TrainingModeGuard restore(*this);
  eval();
  NoGradGuard ng;
  std::vector<int64_t> seq = prompt.to_vector<int64_t>();
  auto window = [&] {
    int64_t start = std::max<int64_t>(0, static_cast<int64_t>(seq.size()) - config_.context);
    return std::vector<int64_t>(seq.begin() + start, seq.end());
  };
  auto fits = [&] { return static_cast<int64_t>(seq.size()) <= config_.context; };
  KVCache cache;
  std::vector<double> logits = last_logits(window(), o.use_cache && fits() ? &cache : nullptr);
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    int64_t token = draw(sampling_distribution(logits, o), o, gen);
    if (o.stop_at && token == *o.stop_at) break;
    seq.push_back(token);
    if (i + 1 == o.max_new_tokens) break;
    if (o.use_cache && fits())
      logits = last_logits({token}, &cache);  // one position, after the cached ones
    else
      logits = last_logits(window(), nullptr);  // beyond the context: recompute the window
  }
  return Tensor::from_vector(seq);
}

Tensor GPT::generate(const Tensor& prompt, int64_t n, double temperature, int64_t top_k,
                     Generator* gen) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.temperature = temperature;
  o.top_k = top_k;
  o.generator = gen;
  return generate(prompt, o);
}

}  // namespace ag::nn
