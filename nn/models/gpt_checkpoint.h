// GPT checkpoints: a safetensors file holding the model's tensors, with its configuration in the
// metadata ("model": "gpt", "gpt.n_layer": "4", ...), so a reader rebuilds the same model.
#pragma once

#include <memory>
#include <string>

#include "nn/checkpoint.h"
#include "nn/models/gpt.h"

namespace ag::nn {

// The configuration as metadata entries: "model" = "gpt", "gpt.vocab_size", "gpt.n_layer",
// "gpt.n_head", "gpt.d_model", "gpt.context" (decimal integers) and "gpt.gelu".
Metadata gpt_config_metadata(const GPTConfig& config);

// Reads the configuration back. ValueError naming `source` and the key for a missing entry, a value
// that is not a decimal integer, or a configuration GPTConfig::validate refuses.
GPTConfig gpt_config_from_metadata(const Metadata& metadata, const std::string& source);

// The number of parameters of a GPT of this configuration (what GPT(config).num_parameters()
// returns), computed without building it; ValueError if it does not fit 63 bits.
//   (vocab + context) * C + n_layer * (12 C^2 + 13 C) + 2 C     for d_model C
int64_t gpt_num_parameters(const GPTConfig& config);

// Saves the model's state_dict with its configuration and `extra` metadata (atomically, with a
// checksum: see save_safetensors).
void save_gpt(const std::string& path, const GPT& model, const Metadata& extra = {});

// Builds the GPT a checkpoint describes and loads its tensors; `metadata`, if given, receives all
// of the file's metadata. Entries named "optimizer/..." (a training state saved with
// save_checkpoint) are ignored. The parameter count the metadata implies is checked against the
// values the file holds before the model is built, so metadata claiming a huge model is refused
// without allocating it. IOError for a missing or malformed file (see load_safetensors),
// ValueError for metadata or tensors that do not describe a GPT, naming the path.
std::shared_ptr<GPT> load_gpt(const std::string& path, Metadata* metadata = nullptr);

}  // namespace ag::nn
