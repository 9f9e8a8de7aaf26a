// Attention layers.
//
// Shapes: B batch, T sequence length, C = d_model, H heads, D = C / H head size.
#pragma once

#include <memory>
#include <string>

#include "nn/linear.h"
#include "nn/module.h"

namespace ag::nn {

struct AttentionOptions {
  int64_t d_model = 128;
  int64_t n_head = 4;
  double dropout = 0.0;  // on the attention probabilities, in training mode
  uint64_t seed = 0;     // of the dropout's generator
  // Initial weights N(0, init_std) for the qkv projection and N(0, proj_init_std) for the output
  // projection; biases 0 (GPT-2's initialisation).
  double init_std = 0.02;
  double proj_init_std = 0.02;
};

// The keys and values a CausalSelfAttention has computed for the positions it has seen so far, for
// generation one token at a time (GPT::generate): keys and values [B, H, T_cached, D], undefined
// before the first forward that uses the cache. Each forward with the cache appends the keys and
// values of its new positions.
struct AttentionCache {
  // Views of the first T_cached positions of the buffers below.
  Tensor keys, values;
  // Storage [B, H, capacity, D] with room for more positions than are held: appending copies only
  // the new positions' keys and values; when full, the capacity doubles (one copy of the held ones).
  Tensor key_buffer, value_buffer;
  // T_cached: the number of positions held (0 when empty).
  int64_t length() const { return keys.defined() ? keys.size(2) : 0; }
  void clear() { keys = values = key_buffer = value_buffer = Tensor(); }
};

// Causal multi-head self-attention with one fused qkv projection:
//   q, k, v = split(x Wqkv^T + bqkv)            [B, T, C] each, viewed as [B, H, T, D]
//   att = softmax(q k^T / sqrt(D) + causal mask) [B, H, T, T]  (masked: probability exactly 0)
//   y = (dropout(att) v) merged back to [B, T, C], then the output projection.
// ValueError if d_model is not a positive multiple of n_head.
class CausalSelfAttention : public Module {
 public:
  CausalSelfAttention(const AttentionOptions& options, Generator* gen);
  // x [B, T, C] -> [B, T, C]
  Tensor forward(const Tensor& x) override { return forward(x, nullptr); }
  // With a cache (may be null: then as forward(x)): the T new positions of x come after the
  // T_cached positions in the cache; their queries attend to the cached keys and values and to
  // their own (causally), and the cache grows by T. The result equals the last T positions of a
  // forward of the whole sequence. Only for inference: ValueError in training mode or with
  // gradient recording on, and ShapeError if the cache's batch, heads or head size differ from
  // x's.
  Tensor forward(const Tensor& x, AttentionCache* cache);
  std::string type_name() const override { return "CausalSelfAttention"; }
  // The generator of the attention dropout.
  std::vector<Generator*> own_generators() override { return {&gen_}; }
  // The attention probabilities of the last forward ([B, H, T, T]; with a cache
  // [B, H, T, T_cached + T]), kept when keep_attention is set.
  Tensor last_attention;
  bool keep_attention = false;
  std::shared_ptr<Linear> qkv, proj;

 private:
  int64_t n_head_;
  double dropout_;
  Generator gen_;
};

}  // namespace ag::nn
