// GPT-2's byte-level byte-pair encoding (Radford et al. 2019), with GPT-2's exact behaviour:
//
// 1. Pre-tokenization: the text (UTF-8) is cut into pieces by GPT-2's regular expression
//      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//    run by PCRE2 in UTF + Unicode-properties mode, \s being Unicode's White_Space property as in
//    the Python `regex` module GPT-2 uses. The pieces cover the text, in order.
// 2. Each piece's bytes start as one symbol per byte. The file form of a symbol is a string over a
//    256-character alphabet (gpt2_byte_to_unicode(): printable Latin-1 bytes stand for
//    themselves, the other bytes for U+0100..U+0143, so e.g. a space is "Ġ", U+0120).
// 3. Merges by rank: while some adjacent pair of symbols is in the merge list, the pair of lowest
//    rank (line order in merges.txt) is merged, at all its non-overlapping occurrences from left to
//    right. The final symbols' ids (vocab.json) are the piece's tokens.
// The plain encode() treats `<|endoftext|>` in the text as ordinary text (as OpenAI's encoder and
// the npm package gpt-3-encoder do); encode_with_special() maps it to eos_id().
//
// Encoded pieces are cached (pieces up to 64 bytes, at most 2^18 of them; the cache is emptied
// when full); the cache is guarded by a lock, so one tokenizer can be used from several threads.
// Cost: about linear in the text (the merges of a piece of n bytes take O(n log n)).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "nn/text/tokenizer.h"

namespace ag::nn {

// GPT-2's bytes-to-unicode table: the code point that stands for each byte in the token strings of
// vocab.json / merges.txt. A bijection from the 256 bytes onto 256 code points below U+0144, none
// of them whitespace or a control character.
const std::array<char32_t, 256>& gpt2_byte_to_unicode();

class GPT2Tokenizer final : public Tokenizer {
 public:
  // The vocabulary and merges, in memory.
  //   tokens[id]: the bytes token `id` stands for (non-empty, pairwise distinct, every single byte
  //               among them);
  //   merges[rank]: the ids of the two tokens merged at that rank; the token of their concatenated
  //                 bytes must be in `tokens`; no pair twice.
  // ValueError naming the id or the rank otherwise.
  GPT2Tokenizer(std::vector<std::string> tokens, std::vector<std::pair<int64_t, int64_t>> merges);
  ~GPT2Tokenizer() override;

  // Reads a vocabulary (JSON object: token string -> id; the ids must be 0..N-1, each once, every
  // token string over the gpt2_byte_to_unicode() alphabet) and a merge list (text: an optional
  // first line starting with "#version", then one merge per line, two token strings separated by
  // one space; empty lines and a final "\r" are ignored). IOError naming the file if one cannot be
  // read; ValueError naming the file and the entry or line for malformed contents (invalid JSON,
  // a value that is not an integer id, an id out of range or twice, a token twice, a character
  // outside the alphabet, a missing single-byte token, a merge line without exactly two tokens, a
  // merge naming an unknown token or giving an unknown token, a merge twice).
  static std::unique_ptr<GPT2Tokenizer> from_files(const std::string& vocab_json,
                                                   const std::string& merges_txt);
  // from_files of dir/vocab.json + dir/merges.txt if both exist, else of dir/encoder.json +
  // dir/vocab.bpe; IOError naming the directory if neither pair is complete.
  static std::unique_ptr<GPT2Tokenizer> load(const std::string& dir);

  // GPT-2's tokens of `text` (steps 1-3 above). ValueError naming the byte offset if `text` is not
  // valid UTF-8 (a truncated or overlong sequence, a surrogate, a code point above U+10FFFF).
  std::vector<int64_t> encode(std::string_view text) const override;
  // As encode, but each occurrence of the text "<|endoftext|>" becomes the single id eos_id() (the
  // text between them is encoded by encode()). Without an eos token, the same as encode.
  std::vector<int64_t> encode_with_special(std::string_view text) const;
  std::string decode(std::span<const int64_t> ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  // The id of "<|endoftext|>" if the vocabulary has it (GPT-2: 50256).
  std::optional<int64_t> eos_id() const override { return eos_; }
  // Writes dir/vocab.json (token strings in id order) and dir/merges.txt ("#version: 0.2" then the
  // merges in rank order), the Hugging Face names; from_files of them gives the same tokenizer.
  void save(const std::string& dir) const override;
  std::string name() const override { return "gpt2"; }

  // The bytes of token `id` (IndexError if outside [0, vocab_size())).
  const std::string& token_bytes(int64_t id) const;
  // The number of merges.
  int64_t merge_count() const { return static_cast<int64_t>(merges_.size()); }

 private:
  struct Rule {
    int32_t rank, merged;
  };
  // The ids of one piece (the bytes of one regex match), through the cache.
  void encode_piece(std::string_view piece, std::vector<int64_t>& out) const;
  // The merges of one piece without the cache.
  std::vector<int32_t> merge_piece(std::string_view piece) const;

  std::vector<std::string> tokens_;                  // id -> bytes
  std::vector<std::pair<int32_t, int32_t>> merges_;  // rank -> pair of ids
  std::unordered_map<uint64_t, Rule> rules_;         // (left << 32 | right) -> rank, merged id
  std::array<int32_t, 256> byte_id_{};               // byte -> its single-byte token
  std::optional<int64_t> eos_;
  mutable std::shared_mutex cache_mutex_;
  struct PieceHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::unordered_map<std::string, std::vector<int32_t>, PieceHash, std::equal_to<>> cache_;
};

}  // namespace ag::nn
