// Fuzz target: the model.safetensors.index.json of a GPT-2 checkpoint split over several files
// (load_gpt2), next to a valid config.json and two valid shards. An index assigning every tensor
// to its shard gives a model that runs one forward step; anything else must raise the project's
// error (ag::Error).
#include "gpt2_dir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = fuzz::gpt2_dir(/*sharded=*/true);
  fuzz::write_file(dir + "/model.safetensors.index.json", data, size);
  fuzz::load_and_run(dir);
  return 0;
}
