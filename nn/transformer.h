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

#include "nn/layers.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace ag::nn {

struct GPTConfig {
  int64_t vocab_size = 256;
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t d_model = 128;
  int64_t context = 64;
  double dropout = 0.0;       // on attention weights, and on the outputs of both residual branches
  std::string gelu = "tanh";  // GELU form in the MLP: "tanh" or "none" (erf)
  uint64_t seed = 0;
  void validate() const;
};

// Causal multi-head self-attention with one fused qkv projection:
//   q, k, v = split(x Wqkv^T + bqkv)            [B, T, C] each, viewed as [B, H, T, D]
//   att = softmax(q k^T / sqrt(D) + causal mask) [B, H, T, T]  (masked: probability exactly 0)
//   y = (dropout(att) v) merged back to [B, T, C], then the output projection.
class CausalSelfAttention : public Module {
 public:
  CausalSelfAttention(const GPTConfig& config, Generator* gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "CausalSelfAttention"; }
  // The attention probabilities of the last forward ([B, H, T, T]), kept when keep_attention is
  // set.
  Tensor last_attention;
  bool keep_attention = false;
  std::shared_ptr<Linear> qkv, proj;

 private:
  int64_t n_head_;
  double dropout_;
  Generator gen_;
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

// ---- LoRA over a whole model ----
struct LoRAConfig {
  int64_t rank = 8;
  double alpha = 16.0;
  // Module names (dotted, glob) of the Linear layers to adapt.
  std::vector<std::string> targets = {"*.attn.qkv", "*.attn.proj", "*.mlp.fc", "*.mlp.proj"};
  uint64_t seed = 0;
};
// Freezes every parameter of `model`, then adds trainable adapters to the matching Linear layers.
// Returns how many layers were adapted (ValueError if none match).
int64_t apply_lora(Module& model, const LoRAConfig& config);
// Folds every adapter into its base weight and removes it; parameters are unfrozen again.
void merge_lora(Module& model);
// The adapter parameters alone (names ending in ".lora.A" / ".lora.B"), for saving adapters.
StateDict lora_state_dict(const Module& model);

}  // namespace ag::nn
