// GPT-2 tokenizer speed (docs/text.md): encodes one text file with the tokenizer of a directory
// (load_tokenizer: vocab.json + merges.txt or encoder.json + vocab.bpe) on one thread.
//
//   bench_tokenizer DIR FILE [--passes N]     (N >= 2, default 5)
//
// Pass 1 starts from an empty piece cache (a fresh tokenizer); passes 2..N reuse it. Prints the
// load time, pass 1's speed, and as its last line `encode <X> MB/s` with X the median speed of
// passes 2..N (MB = 10^6 bytes of input text).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "nn/data/text.h"
#include "nn/text/tokenizer.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int passes = 5;
  if (argc == 5 && std::strcmp(argv[3], "--passes") == 0) passes = std::atoi(argv[4]);
  if ((argc != 3 && argc != 5) || passes < 2) {
    std::fprintf(stderr, "usage: bench_tokenizer DIR FILE [--passes N]  (N >= 2)\n");
    return 2;
  }
  try {
    auto t0 = std::chrono::steady_clock::now();
    auto tokenizer = ag::nn::load_tokenizer(argv[1]);
    fmt::print("loaded {} tokenizer ({} tokens) from {} in {:.3f} s\n", tokenizer->name(),
               tokenizer->vocab_size(), argv[1], seconds_since(t0));
    std::string text = ag::nn::read_text_file(argv[2]);
    const double mb = static_cast<double>(text.size()) / 1e6;
    std::vector<double> speeds;
    size_t tokens = 0;
    for (int pass = 0; pass < passes; ++pass) {
      t0 = std::chrono::steady_clock::now();
      tokens = tokenizer->encode(text).size();
      double s = seconds_since(t0);
      if (pass == 0)
        fmt::print("pass 1 (empty cache): {:.2f} MB, {} tokens in {:.3f} s: {:.2f} MB/s\n", mb,
                   tokens, s, mb / s);
      else
        speeds.push_back(mb / s);
    }
    std::sort(speeds.begin(), speeds.end());
    fmt::print("passes 2..{}: min {:.2f}, max {:.2f} MB/s\n", passes, speeds.front(),
               speeds.back());
    fmt::print("encode {:.2f} MB/s\n", speeds[speeds.size() / 2]);
  } catch (const ag::Error& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
