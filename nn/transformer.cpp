#include "nn/transformer.h"

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
}

namespace {
// GPT-2's initialisation: weights N(0, 0.02), biases 0.
std::shared_ptr<Linear> make_linear(int64_t in, int64_t out, Generator* gen, double std = 0.02) {
  auto l = std::make_shared<Linear>(in, out, true, gen);
  init::normal_(l->weight, 0.0, std, gen);
  init::zeros_(l->bias);
  return l;
}
}  // namespace

CausalSelfAttention::CausalSelfAttention(const GPTConfig& c, Generator* gen)
    : n_head_(c.n_head), dropout_(c.dropout), gen_(c.seed + 101) {
  qkv = register_module("qkv", make_linear(c.d_model, 3 * c.d_model, gen));
  proj =
      register_module("proj", make_linear(c.d_model, c.d_model, gen,
                                          0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layer))));
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  int64_t B = x.size(0), T = x.size(1), C = x.size(2), H = n_head_, D = C / H;
  Tensor qkv_out = qkv->forward(x);   // [B, T, 3C]
  auto parts = split(qkv_out, C, 2);  // 3 x [B, T, C]
  auto heads = [&](const Tensor& t) { return transpose(reshape(t, {B, T, H, D}), 1, 2); };
  Tensor q = heads(parts[0]), k = heads(parts[1]), v = heads(parts[2]);  // [B, H, T, D]
  Tensor att = mul(matmul(q, transpose(k, -2, -1)), 1.0 / std::sqrt(static_cast<double>(D)));
  Tensor future = triu(ones({T, T}, boolean), 1);          // true above the diagonal
  att = softmax(masked_fill(att, future, -INFINITY), -1);  // [B, H, T, T]
  if (keep_attention) last_attention = att.detach();
  att = dropout(att, dropout_, is_training(), &gen_);
  Tensor y = matmul(att, v);  // [B, H, T, D]
  y = reshape(transpose(y, 1, 2), {B, T, C});
  return proj->forward(y);
}

MLPBlock::MLPBlock(const GPTConfig& c, Generator* gen) : gelu_(c.gelu) {
  fc = register_module("fc", make_linear(c.d_model, 4 * c.d_model, gen));
  proj =
      register_module("proj", make_linear(4 * c.d_model, c.d_model, gen,
                                          0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layer))));
}

Tensor MLPBlock::forward(const Tensor& x) { return proj->forward(gelu(fc->forward(x), gelu_)); }

TransformerBlock::TransformerBlock(const GPTConfig& c, Generator* gen) {
  ln1 = register_module("ln1", std::make_shared<LayerNorm>(c.d_model));
  attn = register_module("attn", std::make_shared<CausalSelfAttention>(c, gen));
  ln2 = register_module("ln2", std::make_shared<LayerNorm>(c.d_model));
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
  ln_f = register_module("ln_f", std::make_shared<LayerNorm>(c.d_model));
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

int64_t apply_lora(Module& model, const LoRAConfig& c) {
  model.freeze("*");
  Generator gen(c.seed + 303);
  int64_t n = 0;
  for (auto& [name, m] : model.named_modules()) {
    auto* lin = dynamic_cast<Linear*>(m);
    if (!lin) continue;
    bool match = false;
    for (auto& pattern : c.targets) match = match || name_matches(name, pattern);
    if (!match) continue;
    lin->add_adapter(c.rank, c.alpha, &gen);
    ++n;
  }
  if (n == 0) fail<ValueError>("apply_lora: no Linear layer matches the target patterns");
  return n;
}

void merge_lora(Module& model) {
  // Gather the layers first: merging removes (frees) each adapter module, which the list of
  // named_modules() also holds; looking at it after its merge was a use after free (found by ASan).
  std::vector<Linear*> layers;
  for (auto& [name, m] : model.named_modules())
    if (auto* lin = dynamic_cast<Linear*>(m)) layers.push_back(lin);
  for (Linear* lin : layers) lin->merge_adapter();
  model.unfreeze("*");
}

StateDict lora_state_dict(const Module& model) {
  StateDict r;
  for (auto& [n, t] : model.state_dict())
    if (name_matches(n, "*.lora.A") || name_matches(n, "*.lora.B")) r.emplace_back(n, t);
  return r;
}

}  // namespace ag::nn
