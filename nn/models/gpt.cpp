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

Tensor TransformerBlock::forward(const Tensor& x) {
  Tensor h = add(x, drop_->forward(attn->forward(ln1->forward(x))));
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

Tensor GPT::forward(const Tensor& tokens) {
  if (tokens.dim() != 2 || tokens.dtype() != int64)
    fail<ShapeError>("GPT: expected int64 tokens [B, T], got {} {}", dtype_name(tokens.dtype()),
                     tokens.shape());
  int64_t T = tokens.size(1);
  if (T > config_.context || T == 0)
    fail<ShapeError>("GPT: sequence length {} must be in [1, context {}]", T, config_.context);
  Tensor pos = arange(T, int64);
  Tensor x = add(wte->forward(tokens), wpe->forward(pos));  // [B, T, C]
  for (auto& b : blocks) x = b->forward(x);
  x = ln_f->forward(x);
  return linear(x, wte->weight);  // tied output projection: [B, T, V]
}

Tensor GPT::loss(const Tensor& tokens, const Tensor& targets) {
  if (!(tokens.shape() == targets.shape()))
    fail<ShapeError>("GPT::loss: tokens {} and targets {} differ in shape", tokens.shape(),
                     targets.shape());
  Tensor logits = forward(tokens);
  int64_t V = config_.vocab_size;
  return cross_entropy(reshape(logits, {-1, V}), reshape(targets, {-1}));
}

Tensor GPT::generate(const Tensor& prompt, int64_t n, double temperature, int64_t top_k,
                     Generator* gen) {
  if (prompt.dim() != 1 || prompt.dtype() != int64 || prompt.numel() == 0)
    fail<ShapeError>("GPT::generate: prompt must be a non-empty int64 vector, got {} {}",
                     dtype_name(prompt.dtype()), prompt.shape());
  if (!(temperature > 0)) fail<ValueError>("GPT::generate: temperature must be positive");
  bool was_training = is_training();
  eval();
  NoGradGuard ng;
  std::vector<int64_t> seq = prompt.to_vector<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t start = std::max<int64_t>(0, static_cast<int64_t>(seq.size()) - config_.context);
    std::vector<int64_t> ctx(seq.begin() + start, seq.end());
    Tensor in = Tensor::from_vector(ctx, {1, static_cast<int64_t>(ctx.size())});
    Tensor logits = select(select(forward(in), 0, 0), 0, -1).to(float64);  // [V]
    logits = mul(logits, 1.0 / temperature);
    if (top_k > 0 && top_k < config_.vocab_size) {
      auto v = logits.to_vector<double>();
      std::vector<double> sorted = v;
      std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(),
                       std::greater<double>());
      double kth = sorted[top_k - 1];
      logits = masked_fill(logits, lt(logits, scalar_tensor(kth, float64)), -INFINITY);
    }
    Tensor probs = softmax(logits, -1);
    seq.push_back(static_cast<int64_t>(multinomial(probs, 1, false, gen).item()));
  }
  train(was_training);
  return Tensor::from_vector(seq);
}

}  // namespace ag::nn
