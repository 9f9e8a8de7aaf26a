// Checkpoints: a model's state (and an optimizer's) with metadata, in one safetensors file
// (nn/io/safetensors.h), written atomically and checked completely when read.
#pragma once

#include <string>

#include "nn/io/safetensors.h"
#include "nn/module.h"
#include "nn/optim/optimizer.h"

namespace ag::nn {

// A checkpoint is a safetensors file holding the module's state_dict() under its own names
// ("fc.weight", ...) and, if an optimizer is given, its state: buffers as tensors named
// "optimizer/<name>" ("optimizer/state.0.3.exp_avg") and scalars (step count, hyper-parameters)
// as metadata entries "optimizer/<name>" written with enough digits to read back exactly.

// Saves module (and optimizer) state plus user metadata, atomically. ValueError if a metadata key
// starts with the reserved prefix "optimizer/".
void save_checkpoint(const std::string& path, const Module& module,
                     const Optimizer* optimizer = nullptr, const Metadata& metadata = {});

struct CheckpointInfo {
  Metadata metadata;  // the user's metadata (without the optimizer's entries)
  LoadResult model;   // what load_state_dict reported (non-empty lists only when !strict)
};

// Restores a checkpoint into `module` (and `optimizer`). All or nothing: the file is read and
// checked completely, then the optimizer state and the module's tensors are checked against the
// objects, and only when everything fits are they modified. Otherwise module and optimizer are left
// unchanged and IOError (problems with the file) or ValueError (names or shapes that do not fit the
// model, listed by Module::load_state_dict; missing optimizer state) is thrown. strict = false
// tolerates missing and unexpected model entries (shapes must still match).
CheckpointInfo load_checkpoint(const std::string& path, Module& module,
                               Optimizer* optimizer = nullptr, bool strict = true);

}  // namespace ag::nn
