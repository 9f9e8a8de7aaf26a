// Fuzz target: the IDX readers (MNIST's format, plain or gzip-compressed) on arbitrary bytes. Each
// input goes to the image reader (both layouts) and the label reader; a valid file gives tensors
// that are read in full, anything else must raise the project's error (ag::Error).
#include "fuzz_input.h"
#include "nn/io/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_input(data, size);
  for (int reader = 0; reader < 3; ++reader) {
    try {
      ag::Tensor t = reader == 2 ? ag::nn::read_idx_labels(path)
                                 : ag::nn::read_idx_images(path, /*flatten=*/reader == 0);
      (void)t.to_vector<double>();
    } catch (const ag::Error&) {
    }
  }
  return 0;
}
