// The byte-level tokenizer: token id = byte value, vocabulary 256, no end-of-text token. This is
// the vocabulary of the byte-level GPT example (examples/gpt.cpp, docs/gpt.md).
#pragma once

#include "nn/text/tokenizer.h"

namespace ag::nn {

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int64_t kVocabSize = 256;

  // One id per byte of `text` (any bytes, valid UTF-8 or not).
  std::vector<int64_t> encode(std::string_view text) const override;
  // One byte per id; IndexError naming the position and the id for an id outside [0, 256).
  std::string decode(std::span<const int64_t> ids) const override;
  int64_t vocab_size() const override { return kVocabSize; }
  // Always ValueError: the byte tokenizer has no files (nothing to load back).
  void save(const std::string& dir) const override;
  std::string name() const override { return "byte"; }
};

}  // namespace ag::nn
