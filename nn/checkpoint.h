// Checkpoints in the safetensors format, so other tools read our weights and we read theirs.
//
// File layout (all integers little-endian):
//   [8 bytes]  N, the header length (u64)
//   [N bytes]  a JSON object, one entry per tensor, plus an optional "__metadata__" of strings:
//                {"__metadata__": {"epoch": "3"},
//                 "fc.weight": {"dtype": "F32", "shape": [10, 784], "data_offsets": [0, 31360]},
//                 ...}
//              padded with spaces to a multiple of 8 bytes
//   [rest]     the raw row-major data of every tensor; data_offsets = [begin, end) in bytes,
//   counted
//              from the start of this section. The tensors tile it exactly: no gaps, no overlaps.
//
// dtypes written: F32, F64, I64, BOOL (our four). Also read, converted on the way in: F16 and BF16
// (to float32), I32, I16, I8, U8 (to int64). Any other dtype is rejected.
//
// Writes are atomic: the file is written to "<path>.tmp.<pid>", flushed to disk (fsync) and renamed
// over `path`, so a failure mid-write leaves a previous checkpoint at `path` intact.
// Writes record the CRC-32 of the data section in the metadata, under "tapegrad.data_crc32" (8
// lowercase hex digits; the key is reserved). Reads validate the whole file (header length against
// the file size, JSON syntax, dtype names, shape * itemsize == byte span, offsets in bounds,
// without gaps or overlaps, and the CRC-32 when the file has one: files written by other tools load
// without it) and raise IOError naming the path and the problem before anything is returned or
// loaded into a model. The checksum entry is not returned with the metadata.
#pragma once

#include <map>
#include <string>

#include "nn/module.h"
#include "nn/optim/optimizer.h"

namespace ag::nn {

// The "__metadata__" of a safetensors file: free-form string pairs.
using Metadata = std::map<std::string, std::string>;

// Writes named tensors (any strides; written row-major) and metadata to `path` atomically.
// ValueError for an undefined tensor, an empty or duplicate name, or the reserved name
// "__metadata__"; IOError (naming the path and the system's reason) if the file cannot be written.
void save_safetensors(const std::string& path, const StateDict& tensors,
                      const Metadata& metadata = {});

// Reads every tensor of a safetensors file, in the order of their data in the file (which is the
// order they were saved in by save_safetensors), and its metadata if `metadata` is given.
// IOError naming the path and the problem for a missing, truncated or malformed file.
StateDict load_safetensors(const std::string& path, Metadata* metadata = nullptr);

// ---- model (+ optimizer) checkpoints ----
//
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

// ---- single tensors as NumPy .npy files ----
//
// save_npy writes a C-ordered .npy (format 1.0, by xtensor) of any tensor (float32 "<f4", float64
// "<f8", int64 "<i8", bool "|b1"), atomically like the checkpoints. load_npy reads those four
// dtypes from format 1.0, 2.0 or 3.0 files, C or Fortran order (returned row-major). The header is
// parsed and the size its shape announces is checked against the file's length before anything
// is allocated: IOError naming the path for a missing, truncated or malformed file (or one with
// bytes after its data), or another dtype.
void save_npy(const std::string& path, const Tensor& t);
Tensor load_npy(const std::string& path);

}  // namespace ag::nn
