// A byte-level GPT: token and learned position embeddings, pre-LayerNorm transformer blocks
// (causal multi-head self-attention and a GELU MLP, each in a residual branch), a final LayerNorm
// and an output projection tied to the token embedding.
//
// Shapes: B batch, T sequence length (<= context), C = d_model, H heads, D = C / H head size, V
// vocab.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "nn/attention.h"
#include "nn/layers.h"
#include "nn/linear.h"
#include "nn/lora.h"
#include "nn/module.h"
#include "nn/normalization.h"

namespace ag::nn {

struct GPTConfig {
  int64_t vocab_size = 256;
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t d_model = 128;
  int64_t context = 64;
  double dropout = 0.0;       // on attention weights, and on the outputs of both residual branches
  std::string gelu = "tanh";  // GELU form in the MLP: "tanh" or "none" (erf)
  double layer_norm_eps = 1e-5;  // epsilon of every LayerNorm (the blocks' and the final one)
  uint64_t seed = 0;
  // Activation checkpointing (autograd/checkpoint.h), a runtime switch: while gradients are
  // recorded (and no key/value cache is used), each block's forward runs under ag::checkpoint with
  // the block's dropout generators, so only the blocks' inputs are kept for backward and each
  // block's activations are recomputed during backward (about a third more compute for the blocks,
  // the same gradients bit for bit). Not stored in checkpoint files;
  // GPT::set_checkpoint_activations changes it on a model.
  bool checkpoint_activations = false;
  void validate() const;
};

// fc: C -> 4C, GELU, proj: 4C -> C
class MLPBlock : public Module {
 public:
  MLPBlock(const GPTConfig& config, Generator* gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MLP"; }
  std::shared_ptr<Linear> fc, proj;

 private:
  std::string gelu_;
};

// x = x + drop(attn(ln1(x)));  x = x + drop(mlp(ln2(x)))
class TransformerBlock : public Module {
 public:
  TransformerBlock(const GPTConfig& config, Generator* gen);
  Tensor forward(const Tensor& x) override { return forward(x, nullptr); }
  // With the attention's key/value cache (may be null); see CausalSelfAttention::forward.
  Tensor forward(const Tensor& x, AttentionCache* cache);
  std::string type_name() const override { return "TransformerBlock"; }
  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<CausalSelfAttention> attn;
  std::shared_ptr<MLPBlock> mlp;

 private:
  std::shared_ptr<Dropout> drop_;
};

// The key/value caches of every block's attention (GPT::forward with a cache, GPT::generate):
// layers[i] holds block i's keys and values [B, H, T_cached, D].
struct KVCache {
  std::vector<AttentionCache> layers;
  // T_cached: the number of positions held (0 when empty).
  int64_t length() const { return layers.empty() ? 0 : layers.front().length(); }
  void clear() { layers.clear(); }
};

// How GPT::generate picks each new token from the logits of the last position.
//
// temperature 0 is greedy decoding: the most likely token (the lowest id among equals), no
// randomness, top_k and top_p have no effect. Otherwise the logits are divided by the temperature,
// then top_k > 0 keeps the k largest (and any equal to the k-th), the softmax of those is taken,
// then top_p < 1 keeps the most probable tokens, in decreasing order of probability (ties: lower id
// first), up to and including the first one at which their summed probability reaches top_p; the
// kept probabilities are renormalised and one token is drawn (sampling_distribution computes this
// distribution).
struct GenerateOptions {
  int64_t max_new_tokens = 100;
  double temperature = 1.0;  // >= 0; 0: greedy
  int64_t top_k = 0;         // >= 0; 0: no limit
  double top_p = 1.0;        // in (0, 1]; 1: no limit
  // Generation stops when this token is drawn (it is not appended), e.g. GPT-2's <|endoftext|>
  // 50256; must be in [0, vocab).
  std::optional<int64_t> stop_at;
  // The random draws: from `generator` if given, else from a generator seeded with `seed` if
  // given, else from the default generator. Not both.
  std::optional<uint64_t> seed;
  Generator* generator = nullptr;
  // Keys and values kept between steps (each new token costs one position's forward). false
  // recomputes the whole window for every token; both give the same tokens.
  bool use_cache = true;
  // ValueError naming the option for a value outside the ranges above.
  void validate(int64_t vocab_size) const;
};

// The distribution GPT::generate draws the next token from, given the last position's logits [V],
// as GenerateOptions describes (greedy: one-hot at the argmax). Probabilities sum to 1; removed
// tokens are exactly 0. ValueError for invalid options or empty logits.
std::vector<double> sampling_distribution(std::span<const double> logits,
                                          const GenerateOptions& options);

class GPT : public Module {
 public:
  explicit GPT(const GPTConfig& config = {});
  // int64 tokens [B, T] -> logits [B, T, V]
  Tensor forward(const Tensor& tokens) override { return forward(tokens, nullptr); }
  // With a cache (may be null: then as forward(tokens)): tokens are the positions T_cached ..
  // T_cached + T - 1 that follow the cached ones, and the logits [B, T, V] equal the last T
  // positions of a forward of the whole sequence; the cache grows by T. Inference only (eval mode,
  // no grad: ValueError otherwise); ShapeError if T_cached + T exceeds the context or the batch
  // differs from the cache's.
  Tensor forward(const Tensor& tokens, KVCache* cache);
  // Mean cross-entropy of next-token prediction: logits of tokens [B, T] against targets [B, T].
  Tensor loss(const Tensor& tokens, const Tensor& targets);
  std::string type_name() const override { return "GPT"; }
  const GPTConfig& config() const { return config_; }
  // Turns activation checkpointing of the blocks on or off (GPTConfig::checkpoint_activations).
  void set_checkpoint_activations(bool on) { config_.checkpoint_activations = on; }
  // Continues `prompt` (int64 [T0], T0 >= 1) by up to options.max_new_tokens tokens (fewer if
  // options.stop_at is drawn) and returns prompt and continuation, int64 [T0 + n]. Runs in eval
  // mode without gradient recording, and restores the training mode afterwards, also when it
  // throws. With the cache, the prompt is run once and each new token then costs one position's
  // forward. While the sequence fits in the context the model sees all of it; beyond that, each
  // token is predicted from the last `context` tokens, recomputed from scratch at every step (a
  // sliding window: the cached keys would carry the wrong positions). ShapeError for an empty or
  // non-int64 prompt, ValueError for invalid options, IndexError for prompt ids outside the vocab.
  Tensor generate(const Tensor& prompt, const GenerateOptions& options);
  // generate with max_new_tokens n, temperature (0: greedy), top_k and the generator.
  Tensor generate(const Tensor& prompt, int64_t n, double temperature = 1.0, int64_t top_k = 0,
                  Generator* gen = nullptr);

  std::shared_ptr<Embedding> wte, wpe;
  std::vector<std::shared_ptr<TransformerBlock>> blocks;
  std::shared_ptr<LayerNorm> ln_f;

 private:
  // The final LayerNorm's output [B, T, C] (forward without the output projection).
  Tensor hidden(const Tensor& tokens, KVCache* cache);
  // Logits [V] (float64) of the last of `window`'s tokens, through the cache if given.
  std::vector<double> last_logits(const std::vector<int64_t>& window, KVCache* cache);
  GPTConfig config_;
};

}  // namespace ag::nn
