// Text for language models: token ids as tensors, and a text dataset that samples random
// contiguous windows of context + 1 tokens (inputs and next-token targets). The byte-level GPT uses
// nn::ByteTokenizer (nn/text/byte_tokenizer.h: the identity on bytes, vocab 256).
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "autograd/autograd.h"
#include "nn/text/byte_tokenizer.h"

namespace ag::nn {

// tokenizer.encode(text) as an int64 tensor [N] (the tokenizers: nn/text/).
Tensor encode_tensor(const Tokenizer& tokenizer, std::string_view text);
// tokenizer.decode of the ids of an int64 tensor (any shape, read in row-major order); DtypeError
// for another dtype.
std::string decode_tensor(const Tokenizer& tokenizer, const Tensor& ids);

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
