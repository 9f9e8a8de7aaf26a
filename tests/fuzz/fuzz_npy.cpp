// Fuzz target: load_npy on arbitrary bytes. A valid file gives a tensor that is read in full;
// anything else must raise the project's error (ag::Error).
#include "fuzz_input.h"
#include "nn/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_input(data, size);
  try {
    ag::Tensor t = ag::nn::load_npy(path);
    (void)t.to_vector<double>();
  } catch (const ag::Error&) {
  }
  return 0;
}
