// The safetensors format (nn/io): named tensors in one file, so other tools read our weights and
// we read theirs.
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
// dtypes read and written natively: F32, F64, I64, BOOL, BF16 (our five). Also read, converted on
// the way in: F16 (to float32), I32, I16, I8, U8 (to int64). Any other dtype is rejected.
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
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace ag::nn {

// Named tensors, in order (the same alias as nn/module.h's: what Module::state_dict returns).
using StateDict = std::vector<std::pair<std::string, Tensor>>;

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

}  // namespace ag::nn
