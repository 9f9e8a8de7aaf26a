// Shared by the GPT-2 tokenizer's fuzz targets (fuzz_tokenizer_vocab, fuzz_tokenizer_merges): a
// tiny valid tokenizer saved once per process (its vocab.json and merges.txt are the fixed half of
// each input pair; the same tokens and merges as make_seeds.py's seeds), and the checks run on
// every pair of files that loads.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/error.h"
#include "fuzz_input.h"
#include "nn/text/gpt2_tokenizer.h"

namespace fuzz {

// The directory holding the tiny tokenizer's vocab.json and merges.txt (removed at exit).
inline const std::string& tokenizer_dir() {
  // Never destroyed: the exit handler below runs after static destructors registered later.
  static const std::string& dir = *new std::string([] {
    std::string d = input_path() + ".tokenizer";
    const std::vector<std::pair<std::string, std::string>> merges = {
        {" ", "t"},  {"h", "e"}, {" t", "he"},     {"i", "n"},
        {"in", "g"}, {"a", "a"}, {"\xc3", "\xa9"}, {"1", "2"}};
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, static_cast<char>(b)));
    std::vector<std::pair<int64_t, int64_t>> ids;
    for (auto& [a, b] : merges) {
      auto id = [&](const std::string& t) {
        return std::find(tokens.begin(), tokens.end(), t) - tokens.begin();
      };
      ids.emplace_back(id(a), id(b));
      tokens.push_back(a + b);
    }
    tokens.push_back("<|endoftext|>");
    ag::nn::GPT2Tokenizer(tokens, ids).save(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(tokenizer_dir(), ec);
      std::filesystem::remove_all(tokenizer_dir() + ".saved", ec);
    });
    return d;
  }());
  return dir;
}

// Loads the pair; if it loads, encodes sample texts and the input itself (when valid UTF-8): each
// must decode back to the text, and the tokenizer saved and loaded again must encode the same.
// Anything else (a wrong round trip) aborts: a finding. Exceptions other than ag::Error escape
// (a finding too).
inline void check_tokenizer(const std::string& vocab, const std::string& merges,
                            std::string_view input) {
  std::unique_ptr<ag::nn::GPT2Tokenizer> tok;
  try {
    tok = ag::nn::GPT2Tokenizer::from_files(vocab, merges);
  } catch (const ag::Error&) {
    return;
  }
  std::vector<std::string> texts = {"the thing 12 caf\xc3\xa9 aaa<|endoftext|>\n  x\n", "   ",
                                    "it's 123456 !!", std::string(input)};
  std::vector<std::vector<int64_t>> encoded;
  for (const std::string& text : texts) {
    try {
      encoded.push_back(tok->encode(text));
    } catch (const ag::ValueError&) {  // invalid UTF-8 (the input)
      continue;
    }
    if (tok->decode(encoded.back()) != text) std::abort();
    if (tok->decode(tok->encode_with_special(text)) != text) std::abort();
  }
  tok->save(tokenizer_dir() + ".saved");
  auto back = ag::nn::load_tokenizer(tokenizer_dir() + ".saved");
  if (back->vocab_size() != tok->vocab_size() || back->eos_id() != tok->eos_id()) std::abort();
  for (size_t i = 0; i < encoded.size(); ++i)
    if (back->encode(texts[i]) != encoded[i]) std::abort();
}

}  // namespace fuzz
