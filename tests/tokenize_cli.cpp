// The tokenizer from the command line, for tests/tokenizer_reference.sh:
//
//   tokenize_cli encode DIR FILE...   one line per FILE: the ids of its text (load_tokenizer(DIR)),
//                                     separated by single spaces
//   tokenize_cli decode DIR FILE      FILE holds whitespace-separated ids; writes their text to
//                                     stdout, nothing added
//   tokenize_cli save DIR OUT         saves the tokenizer's files into directory OUT
//
// Errors (ag::Error) are printed to stderr, with exit status 1.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "nn/data/text.h"
#include "nn/text/tokenizer.h"

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (argc < 4 || (mode != "encode" && mode != "decode" && mode != "save") ||
      (mode != "encode" && argc != 4)) {
    std::fprintf(stderr,
                 "usage: tokenize_cli encode DIR FILE... | decode DIR FILE | save DIR OUT\n");
    return 2;
  }
  try {
    auto tokenizer = ag::nn::load_tokenizer(argv[2]);
    if (mode == "encode") {
      for (int i = 3; i < argc; ++i)
        fmt::print("{}\n", fmt::join(tokenizer->encode(ag::nn::read_text_file(argv[i])), " "));
    } else if (mode == "save") {
      tokenizer->save(argv[3]);
    } else {
      std::ifstream in(argv[3]);
      if (!in) ag::fail<ag::IOError>("tokenize_cli: cannot open '{}'", argv[3]);
      std::vector<int64_t> ids;
      for (int64_t id; in >> id;) ids.push_back(id);
      if (!in.eof()) ag::fail<ag::ValueError>("tokenize_cli: '{}' holds a non-integer", argv[3]);
      std::string text = tokenizer->decode(ids);
      std::fwrite(text.data(), 1, text.size(), stdout);
    }
  } catch (const ag::Error& e) {
    std::fprintf(stderr, "tokenize_cli: %s\n", e.what());
    return 1;
  }
  return 0;
}
