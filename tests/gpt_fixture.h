// The small GPT configurations of the tests: one place for the fields a test names.
#pragma once

#include "nn/nn.h"

namespace test {

struct GptShape {
  int64_t layers = 1, heads = 2, d_model = 8, context = 4;
  uint64_t seed = 0;
  int64_t vocab = 256;
  double dropout = 0.0;
};

inline ag::nn::GPTConfig gpt_config(const GptShape& s) {
  ag::nn::GPTConfig c;
  c.n_layer = s.layers;
  c.n_head = s.heads;
  c.d_model = s.d_model;
  c.context = s.context;
  c.seed = s.seed;
  c.vocab_size = s.vocab;
  c.dropout = s.dropout;
  return c;
}

}  // namespace test
