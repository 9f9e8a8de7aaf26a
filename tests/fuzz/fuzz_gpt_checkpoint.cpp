// Fuzz target: the GPT checkpoint reader of `gpt sample` / `gpt finetune` (load_gpt: safetensors,
// the configuration in its metadata, the model built and loaded) and the generator state that
// `gpt train --resume` reads from the metadata. A valid checkpoint gives a model that runs one
// forward step; anything else must raise the project's error (ag::Error).
#include "autograd/autograd.h"
#include "fuzz_input.h"
#include "nn/models/gpt_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_input(data, size);
  ag::nn::Metadata meta;
  try {
    (void)ag::nn::load_safetensors(path, &meta);
  } catch (const ag::Error&) {
  }
  try {
    auto model = ag::nn::load_gpt(path);
    ag::NoGradGuard no_grad;
    ag::Tensor tokens = ag::Tensor::from_vector<int64_t>({0}, {1, 1});
    (void)model->forward(tokens).to_vector<double>();
  } catch (const ag::Error&) {
  }
  if (auto it = meta.find("train.rng"); it != meta.end()) {
    try {
      ag::Generator g;
      g.set_state(it->second);
      (void)g.next();
    } catch (const ag::Error&) {
    }
  }
  return 0;
}
