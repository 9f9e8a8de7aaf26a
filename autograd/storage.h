// Storage: a reference-counted, 64-byte aligned buffer shared by a tensor and its views. Buffers
// come from a per-thread cache of size classes (powers of two), so a training loop that makes
// tensors of the same sizes step after step stops calling the system allocator after its first
// step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace ag {

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  // Bumped by every in-place write; shared by all views, checked when saved tensors are unpacked.
  uint32_t version = 0;

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  // A buffer of at least `nbytes` bytes, contents unspecified.
  static std::shared_ptr<Storage> allocate(size_t nbytes);
};

// Statistics and control of the calling thread's buffer cache.
struct BufferCacheStats {
  size_t cached_bytes = 0;  // bytes held in free lists
  size_t hits = 0, misses = 0;
};
BufferCacheStats buffer_cache_stats();
// Returns every cached buffer of the calling thread to the system.
void empty_buffer_cache();

}  // namespace ag
