// Text <-> token ids for language models: the Tokenizer interface and load_tokenizer.
//
// Two tokenizers implement it (docs/text.md):
//   ByteTokenizer  (nn/text/byte_tokenizer.h)  ids 0..255 are the bytes of the text (the byte-level
//                                               GPT example's vocabulary);
//   GPT2Tokenizer  (nn/text/gpt2_tokenizer.h)  GPT-2's byte-level BPE, read from a directory with
//                                               vocab.json + merges.txt (Hugging Face) or
//                                               encoder.json + vocab.bpe (OpenAI).
// Every implementation is safe to use from several threads at once (encode and decode are const
// and thread-safe).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ag::nn {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // The token ids of `text`, each in [0, vocab_size()). Round trip: decode(encode(s)) == s for
  // every text the tokenizer accepts. GPT2Tokenizer requires valid UTF-8 (ValueError naming the
  // byte offset otherwise); ByteTokenizer accepts any bytes.
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;

  // The bytes of the tokens `ids`, concatenated. The result is exactly what the tokens stand for:
  // a sequence cut inside a multi-byte character decodes to the partial bytes (not valid UTF-8),
  // nothing is replaced. IndexError naming the position and the id for an id outside
  // [0, vocab_size()).
  virtual std::string decode(std::span<const int64_t> ids) const = 0;

  // The number of ids: every id is in [0, vocab_size()).
  virtual int64_t vocab_size() const = 0;

  // The end-of-text token's id (GPT-2: 50256, `<|endoftext|>`), or nothing if the vocabulary has
  // none (ByteTokenizer).
  virtual std::optional<int64_t> eos_id() const { return std::nullopt; }

  // Writes the tokenizer's files into directory `dir` (created if missing; files of the same names
  // are replaced), such that load_tokenizer(dir) gives back an equal tokenizer. GPT2Tokenizer
  // writes vocab.json and merges.txt (the Hugging Face names, loadable by transformers'
  // GPT2Tokenizer). IOError naming the file if it cannot be written; ValueError for a tokenizer
  // that has no files (ByteTokenizer).
  virtual void save(const std::string& dir) const = 0;

  // A short name of the kind of tokenizer: "byte" or "gpt2".
  virtual std::string name() const = 0;
};

// The tokenizer whose files are in directory `dir`: a GPT2Tokenizer from vocab.json + merges.txt
// if both are there, else from encoder.json + vocab.bpe. IOError naming the directory and the
// files looked for if neither pair is complete; the errors of GPT2Tokenizer::from_files for
// malformed files.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

}  // namespace ag::nn
