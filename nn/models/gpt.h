// A byte-level GPT: token and learned position embeddings, pre-LayerNorm transformer blocks
// (causal multi-head self-attention and a GELU MLP, each in a residual branch), a final LayerNorm
// and an output projection tied to the token embedding.
//
// Shapes: B batch, T sequence length (<= context), C = d_model, H heads, D = C / H head size, V
// vocab.
#pragma once

#include <memory>
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
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "TransformerBlock"; }
  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<CausalSelfAttention> attn;
  std::shared_ptr<MLPBlock> mlp;

 private:
  std::shared_ptr<Dropout> drop_;
};

class GPT : public Module {
 public:
  explicit GPT(const GPTConfig& config = {});
  // int64 tokens [B, T] -> logits [B, T, V]
  Tensor forward(const Tensor& tokens) override;
  // Mean cross-entropy of next-token prediction: logits of tokens [B, T] against targets [B, T].
  Tensor loss(const Tensor& tokens, const Tensor& targets);
  std::string type_name() const override { return "GPT"; }
  const GPTConfig& config() const { return config_; }
  // Continues `prompt` (int64 [T0]) by n tokens: logits of the last position / temperature,
  // restricted to the top_k most likely (0 = all), sampled with the generator. Eval mode, no grad.
  Tensor generate(const Tensor& prompt, int64_t n, double temperature = 1.0, int64_t top_k = 0,
                  Generator* gen = nullptr);

  std::shared_ptr<Embedding> wte, wpe;
  std::vector<std::shared_ptr<TransformerBlock>> blocks;
  std::shared_ptr<LayerNorm> ln_f;

 private:
  GPTConfig config_;
};

}  // namespace ag::nn
