// Fuzz target: the GPT-2 tokenizer's vocab.json reader (GPT2Tokenizer::from_files), with a fixed
// valid merges.txt. A vocabulary that loads must encode, decode, save and load back consistently
// (fuzz_tokenizer.h); anything else must raise the project's error (ag::Error).
#include "fuzz_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_input(data, size);
  fuzz::check_tokenizer(path, fuzz::tokenizer_dir() + "/merges.txt",
                        std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
