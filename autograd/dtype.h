// Element types. float32 is the default for floating tensors; float64 is what gradient checks use;
// int64 holds indices and class labels; bool holds masks (stored as one byte).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ag {

enum class Dtype : uint8_t { float32, float64, int64, boolean };

inline constexpr Dtype float32 = Dtype::float32;
inline constexpr Dtype float64 = Dtype::float64;
inline constexpr Dtype int64 = Dtype::int64;
inline constexpr Dtype boolean = Dtype::boolean;

inline size_t itemsize(Dtype t) {
  switch (t) {
    case Dtype::float32:
      return 4;
    case Dtype::float64:
      return 8;
    case Dtype::int64:
      return 8;
    case Dtype::boolean:
      return 1;
  }
  return 0;
}
inline bool is_floating(Dtype t) { return t == Dtype::float32 || t == Dtype::float64; }
inline std::string_view dtype_name(Dtype t) {
  switch (t) {
    case Dtype::float32:
      return "float32";
    case Dtype::float64:
      return "float64";
    case Dtype::int64:
      return "int64";
    case Dtype::boolean:
      return "bool";
  }
  return "?";
}

template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr Dtype value = Dtype::float32;
};
template <>
struct dtype_of<double> {
  static constexpr Dtype value = Dtype::float64;
};
template <>
struct dtype_of<int64_t> {
  static constexpr Dtype value = Dtype::int64;
};
template <>
struct dtype_of<bool> {
  static constexpr Dtype value = Dtype::boolean;
};

}  // namespace ag
