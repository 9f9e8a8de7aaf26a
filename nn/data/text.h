// Byte-level text for language models: the tokenizer is the identity on bytes (vocab 256), and a
// text dataset samples random contiguous windows of context + 1 tokens (inputs and next-token
// targets).
#pragma once

#include <string>
#include <utility>

#include "autograd/autograd.h"

namespace ag::nn {

// Bytes <-> int64 token ids in [0, 256).
struct ByteTokenizer {
  static constexpr int64_t vocab_size = 256;
  static Tensor encode(const std::string& text);
  static std::string decode(const Tensor& tokens);  // IndexError for ids outside [0, 256)
};

// Whole file as a string (IOError naming the path if it cannot be read).
std::string read_text_file(const std::string& path);

class TextDataset {
 public:
  // tokens: int64 [N] with N > context.
  TextDataset(Tensor tokens, int64_t context);
  // B random windows: inputs [B, context] and targets [B, context] (inputs shifted by one).
  std::pair<Tensor, Tensor> sample(int64_t batch, Generator& gen) const;
  // Consecutive non-overlapping windows covering the text (for a deterministic validation loss).
  std::vector<std::pair<Tensor, Tensor>> windows(int64_t batch, int64_t max_batches = -1) const;
  int64_t size() const { return tokens_.numel(); }
  int64_t context() const { return context_; }
  const Tensor& tokens() const { return tokens_; }
  // Train and validation datasets: the first (1 - fraction) of the tokens and the last fraction.
  static std::pair<TextDataset, TextDataset> split(const Tensor& tokens, int64_t context,
                                                   double val_fraction = 0.1);

 private:
  Tensor tokens_;
  int64_t context_;
};

}  // namespace ag::nn
