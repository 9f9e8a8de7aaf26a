// Element types. float32 is the default for floating tensors; float64 is what gradient checks use;
// bfloat16 is a storage type (the top 16 bits of a float32: float32's range, 8 significant bits)
// that halves the memory of weights and activations: every kernel reading it computes and
// accumulates in float32 and rounds its result to nearest-even; int64 holds indices and class
// labels; bool holds masks (stored as one byte).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace ag {

enum class Dtype : uint8_t { float32, float64, int64, boolean, bfloat16 };

inline constexpr Dtype float32 = Dtype::float32;
inline constexpr Dtype float64 = Dtype::float64;
inline constexpr Dtype int64 = Dtype::int64;
inline constexpr Dtype boolean = Dtype::boolean;
inline constexpr Dtype bfloat16 = Dtype::bfloat16;

// One bfloat16 value. Reads as a float (exactly); made from a float by rounding to nearest, ties
// to even (NaN stays NaN, overflow gives infinity). Arithmetic on it happens in float.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) : bits(round(f)) {}
  explicit bf16(double f) : bf16(static_cast<float>(f)) {}
  explicit bf16(int64_t i) : bf16(static_cast<float>(i)) {}
  explicit bf16(int i) : bf16(static_cast<float>(i)) {}
  explicit bf16(bool b) : bf16(b ? 1.0f : 0.0f) {}
  operator float() const {
    uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static uint16_t round(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
  }
};

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
    case Dtype::bfloat16:
      return 2;
  }
  return 0;
}
inline bool is_floating(Dtype t) {
  return t == Dtype::float32 || t == Dtype::float64 || t == Dtype::bfloat16;
}
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
    case Dtype::bfloat16:
      return "bfloat16";
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
struct dtype_of<bf16> {
  static constexpr Dtype value = Dtype::bfloat16;
};
template <>
struct dtype_of<bool> {
  static constexpr Dtype value = Dtype::boolean;
};

}  // namespace ag
