// Shared by the GPT-2 directory fuzz targets (fuzz_gpt2_config, fuzz_gpt2_index): a scratch
// directory per process (removed at exit) holding a valid tiny GPT-2 model (vocabulary 8, one
// layer, two heads, n_embd 4, n_positions 4), either as config.json + model.safetensors or as
// config.json + two shards (model-00001-of-00002.safetensors: wte, wpe and h.0.*;
// model-00002-of-00002.safetensors: ln_f.*) awaiting their index. Each input is written over one
// file of it and the directory read with load_gpt2.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "autograd/autograd.h"
#include "nn/io/safetensors.h"
#include "nn/models/gpt2.h"

namespace fuzz {

inline const std::string& scratch_dir() {
  // Never freed, so that the exit handler removing the directory can still read its name.
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    auto* d = new std::string(std::string(tmp && *tmp ? tmp : "/tmp") + "/tapegrad-fuzz-gpt2-" +
                              std::to_string(::getpid()));
    std::filesystem::create_directories(*d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

// The tiny model's directory, written once per process.
inline const std::string& gpt2_dir(bool sharded) {
  static const std::string dir = [sharded] {
    ag::nn::GPTConfig c;
    c.vocab_size = 8;
    c.n_layer = 1;
    c.n_head = 2;
    c.d_model = 4;
    c.context = 4;
    std::string d = scratch_dir() + "/model";
    ag::nn::save_gpt2(d, ag::nn::GPT(c));
    if (sharded) {
      ag::nn::StateDict all = ag::nn::load_safetensors(d + "/model.safetensors"), a, b;
      for (auto& entry : all) (entry.first.starts_with("ln_f.") ? b : a).push_back(entry);
      ag::nn::save_safetensors(d + "/model-00001-of-00002.safetensors", a);
      ag::nn::save_safetensors(d + "/model-00002-of-00002.safetensors", b);
      std::filesystem::remove(d + "/model.safetensors");
    }
    return d;
  }();
  return dir;
}

// Writes the bytes to `path`; aborts if that fails (a broken environment, not a finding).
inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
}

// load_gpt2 and, if it succeeds, one forward step; the project's errors are expected, anything
// else escapes and is a finding.
inline void load_and_run(const std::string& dir) {
  try {
    auto model = ag::nn::load_gpt2(dir);
    ag::NoGradGuard no_grad;
    ag::Tensor tokens = ag::Tensor::from_vector<int64_t>({0}, {1, 1});
    (void)model->forward(tokens).to_vector<double>();
  } catch (const ag::Error&) {
  }
}

}  // namespace fuzz
