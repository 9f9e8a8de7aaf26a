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
  // Bumped only when an in-place op records new autograd history for a tensor on this buffer (the
  // recorded path of add_, mul_, copy_...). Views made earlier remember the value they were made at
  // (TensorImpl::view_history): a view whose value differs has stale history, and using it in a
  // recorded op raises AutogradError instead of sending gradients along the old history.
  uint32_t history = 0;

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  // A buffer of at least `nbytes` bytes, contents unspecified. Throws MemoryError (naming the size)
  // if the system refuses it or if nbytes is beyond what can be addressed.
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

// Library-wide counts of live objects, for finding leaks in long runs. live_tensors counts
// TensorImpls (a Tensor handle and its copies are one; views, grads and saved-output aliases are
// their own), live_nodes counts tape nodes (including leaves' AccumulateGrad nodes), live_storages
// and live_storage_bytes the buffers in use. These are summed over all threads (a tensor made on
// one thread and freed on another nets out). cached_bytes is the calling thread's buffer cache (as
// in buffer_cache_stats). object_pool_bytes is what the pool of the engine's small objects
// (tensor and node records, with their reference counts) has taken from the system, over all
// threads; it is kept for reuse, never returned, so it follows the most such objects alive at once.
// Counting costs two plain (uncontended, thread-local) stores per object created or destroyed;
// reading the counts takes a lock.
struct MemoryStats {
  int64_t live_tensors = 0;
  int64_t live_nodes = 0;
  int64_t live_storages = 0;
  int64_t live_storage_bytes = 0;
  size_t cached_bytes = 0;
  size_t object_pool_bytes = 0;
};
MemoryStats memory_stats();

namespace detail {
// Counter updates used by TensorImpl, Node and Storage constructors and destructors, all inside
// the library: hidden, so the calls are direct rather than through the PLT.
[[gnu::visibility("hidden")]] void count_tensors(int64_t delta);
[[gnu::visibility("hidden")]] void count_nodes(int64_t delta);
[[gnu::visibility("hidden")]] void count_storages(int64_t delta, int64_t bytes);
}  // namespace detail

}  // namespace ag
