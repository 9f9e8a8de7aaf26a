// SmallVector: a vector that keeps up to N elements inline (no heap allocation), spilling to the
// heap beyond that. Nodes use it for their edges and metadata: most ops have one or two inputs, and
// recording an op should not cost a malloc per field. T must be default-constructible.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace ag {

template <class T, size_t N>
class SmallVector {
 public:
  SmallVector() = default;
  SmallVector(std::initializer_list<T> init) {
    for (const T& v : init) push_back(v);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* begin() { return data(); }
  T* end() { return data() + size_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  T& back() { return data()[size_ - 1]; }
  T* data() { return heap_.empty() ? inline_ : heap_.data(); }
  const T* data() const { return heap_.empty() ? inline_ : heap_.data(); }

  void reserve(size_t) {}
  void push_back(T v) {
    if (heap_.empty() && size_ < N) {
      inline_[size_++] = std::move(v);
      return;
    }
    if (heap_.empty()) {
      heap_.reserve(2 * N + 2);
      for (size_t i = 0; i < size_; ++i) heap_.push_back(std::move(inline_[i]));
      for (size_t i = 0; i < size_; ++i) inline_[i] = T();
    }
    heap_.push_back(std::move(v));
    ++size_;
  }
  template <class... A>
  void emplace_back(A&&... args) {
    push_back(T(std::forward<A>(args)...));
  }
  void resize(size_t n) {
    while (size_ < n) push_back(T());
    while (size_ > n) pop_back();
  }
  void pop_back() {
    if (heap_.empty()) {
      inline_[--size_] = T();
    } else {
      heap_.pop_back();
      --size_;
    }
  }
  void clear() {
    for (size_t i = 0; i < N; ++i) inline_[i] = T();
    heap_.clear();
    size_ = 0;
  }

 private:
  T inline_[N] = {};
  std::vector<T> heap_;
  size_t size_ = 0;
};

}  // namespace ag
