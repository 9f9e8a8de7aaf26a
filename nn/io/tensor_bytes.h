// Internal to nn/io: raw access to a tensor's bytes and little-endian loads, shared by the format
// readers and writers. Not installed; not part of the API.
#pragma once

#include <cstring>

#include "autograd/tensor.h"

namespace ag::nn::detail {

// The first byte of a contiguous tensor's data.
inline char* bytes_of(const Tensor& t) {
  switch (t.dtype()) {
    case Dtype::float32:
      return reinterpret_cast<char*>(t.data<float>());
    case Dtype::float64:
      return reinterpret_cast<char*>(t.data<double>());
    case Dtype::int64:
      return reinterpret_cast<char*>(t.data<int64_t>());
    case Dtype::boolean:
      return reinterpret_cast<char*>(t.data<bool>());
    case Dtype::bfloat16:
      return reinterpret_cast<char*>(t.data<bf16>());
  }
  return nullptr;
}

// The byte count of a contiguous tensor's data.
inline size_t byte_size(const Tensor& t) {
  return static_cast<size_t>(t.numel()) * itemsize(t.dtype());
}

// A value of type T stored little-endian at p (any alignment; this library requires a
// little-endian host, checked where files are read).
template <class T>
T load_le(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Sets every byte of a bool tensor's data to 0 or 1 (files may hold any non-zero byte for true).
inline void normalize_bools(const Tensor& t) {
  if (t.dtype() != Dtype::boolean) return;
  char* p = bytes_of(t);
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = p[i] != 0;
}

}  // namespace ag::nn::detail
