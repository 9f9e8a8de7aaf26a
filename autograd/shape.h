// Shape: the sizes (or strides) of a tensor, held inline (no heap allocation) up to kMaxDims axes.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "autograd/error.h"

namespace ag {

inline constexpr int kMaxDims = 8;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.end()); }
  explicit Shape(const std::vector<int64_t>& dims) { assign(dims.begin(), dims.end()); }
  template <class It>
  Shape(It first, It last) {
    assign(first, last);
  }

  int64_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t& operator[](int64_t i) { return d_[i]; }
  int64_t operator[](int64_t i) const { return d_[i]; }
  int64_t back() const { return d_[n_ - 1]; }
  int64_t* begin() { return d_.data(); }
  int64_t* end() { return d_.data() + n_; }
  const int64_t* begin() const { return d_.data(); }
  const int64_t* end() const { return d_.data() + n_; }
  const int64_t* data() const { return d_.data(); }

  void push_back(int64_t v) {
    if (n_ == kMaxDims) fail<ShapeError>("tensors have at most {} axes", kMaxDims);
    d_[n_++] = v;
  }
  void insert(int64_t pos, int64_t v) {
    push_back(0);
    for (int64_t i = n_ - 1; i > pos; --i) d_[i] = d_[i - 1];
    d_[pos] = v;
  }
  void erase(int64_t pos) {
    for (int64_t i = pos; i + 1 < n_; ++i) d_[i] = d_[i + 1];
    --n_;
  }
  void resize(int64_t n, int64_t fill = 0) {
    if (n > kMaxDims) fail<ShapeError>("tensors have at most {} axes, got {}", kMaxDims, n);
    for (int64_t i = n_; i < n; ++i) d_[i] = fill;
    n_ = static_cast<int32_t>(n);
  }

  // Product of the sizes (1 for a scalar shape).
  int64_t numel() const {
    int64_t p = 1;
    for (int64_t i = 0; i < n_; ++i) p *= d_[i];
    return p;
  }
  std::vector<int64_t> vec() const { return {begin(), end()}; }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.n_ != b.n_) return false;
    for (int64_t i = 0; i < a.n_; ++i)
      if (a.d_[i] != b.d_[i]) return false;
    return true;
  }

 private:
  template <class It>
  void assign(It first, It last) {
    n_ = 0;
    for (; first != last; ++first) push_back(static_cast<int64_t>(*first));
  }
  std::array<int64_t, kMaxDims> d_{};
  int32_t n_ = 0;
};

// "[64, 784]"
std::string to_string(const Shape& s);

// numel() for sizes chosen by users: ShapeError naming `op` if a size is negative, MemoryError if
// the product of the non-zero sizes overflows (so no product of some of the sizes can ever wrap).
int64_t checked_numel(const Shape& shape, const char* op);

// Row-major (C-order) strides of a contiguous tensor of this shape, in elements.
Shape contiguous_strides(const Shape& shape);

// NumPy broadcasting of two shapes; throws ShapeError naming `op` and both shapes if they do not
// fit.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Maps a possibly negative axis into [0, ndim); throws IndexError naming `op` otherwise.
int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op);

}  // namespace ag

template <>
struct fmt::formatter<ag::Shape> : fmt::formatter<std::string> {
  auto format(const ag::Shape& s, format_context& ctx) const {
    return fmt::formatter<std::string>::format(ag::to_string(s), ctx);
  }
};
