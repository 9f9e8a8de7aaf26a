// The engine's own small objects (TensorImpl, Storage, tape nodes, each together with its
// shared_ptr control block) come from a pool of per-thread free lists, one per 16-byte size class
// up to 1 KiB, carved from 64 KiB chunks. A training step makes and frees the same objects step
// after step: from the pool they land on the same few pages in the order the step makes them, and
// are reused last-freed first, instead of being spread over the heap among everything else the
// process allocates. Measured on mlp784's step (docs/performance.md, "Engine overhead, tenth
// session"): this is most of the engine's bookkeeping time between the GEMMs, whose data they
// evict.
//
// Memory: chunks are never returned to the system (a block may sit on any thread's list), so the
// pool holds as much as the most engine objects alive at once needed (a few hundred bytes each). A
// thread keeps at most a few thousand free blocks per class and hands the rest to a shared depot,
// where other threads take them before carving new chunks: a thread that frees what another made
// does not grow the pool. Under AddressSanitizer the pool is off (plain new and delete), so that
// use-after-free of these objects is still caught.
//
// Internal to the engine; installed only because op.h's record_outputs, instantiated in op
// authors' code, makes its nodes with make_pooled.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace ag::detail {

// A block of at least `bytes` bytes, aligned to 16; give it back to pool_free with the same size.
void* pool_allocate(size_t bytes);
void pool_free(void* p, size_t bytes) noexcept;
// Bytes of all the chunks carved so far, over all threads (0 while the pool is off).
size_t pool_chunk_bytes();

// A stateless allocator over the pool, for std::allocate_shared.
template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) {}
  T* allocate(size_t n) {
    static_assert(alignof(T) <= 16, "the pool's blocks are aligned to 16 bytes");
    return static_cast<T*>(pool_allocate(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept { pool_free(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const PoolAllocator<U>&) const {
    return true;
  }
};

// std::make_shared<T>(args...), object and control block from the pool.
template <class T, class... Args>
std::shared_ptr<T> make_pooled(Args&&... args) {
  return std::allocate_shared<T>(PoolAllocator<T>{}, std::forward<Args>(args)...);
}

}  // namespace ag::detail
