// Fuzz target: the config.json of a Hugging Face GPT-2 directory (load_gpt2), next to a valid tiny
// model.safetensors. A configuration matching the tensors gives a model that runs one forward step;
// anything else must raise the project's error (ag::Error).
#include "gpt2_dir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = fuzz::gpt2_dir(/*sharded=*/false);
  fuzz::write_file(dir + "/config.json", data, size);
  fuzz::load_and_run(dir);
  return 0;
}
