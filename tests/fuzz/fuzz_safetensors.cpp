// Fuzz target: load_safetensors on arbitrary bytes. A valid file gives tensors whose every byte is
// read here (so ASan sees a wrong size); anything else must raise the project's error (ag::Error).
// Other exceptions escape and crash the run, as libFuzzer reports them.
#include <cmath>

#include "fuzz_input.h"
#include "nn/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_input(data, size);
  try {
    ag::nn::Metadata meta;
    ag::nn::StateDict state = ag::nn::load_safetensors(path, &meta);
    double sum = 0;
    for (auto& [name, t] : state)
      for (double v : t.to_vector<double>()) sum += std::isfinite(v) ? v : 0;
    (void)sum;
  } catch (const ag::Error&) {
  }
  return 0;
}
