#include "autograd/storage.h"

#include <bit>
#include <cstdlib>
#include <new>
#include <vector>

namespace ag {
namespace {

constexpr size_t kAlign = 64;
constexpr int kClasses = 48;
// Buffers above this size are not cached; a thread caches at most kMaxCached bytes in all.
constexpr size_t kMaxCachedBuffer = size_t(1) << 30;
constexpr size_t kMaxCached = size_t(2) << 30;

int size_class(size_t nbytes) {
  if (nbytes <= kAlign) return 6;
  return std::bit_width(nbytes - 1);  // 2^c >= nbytes
}

struct Cache {
  std::vector<void*> free[kClasses];
  BufferCacheStats stats;
  bool alive = true;
  ~Cache() {
    clear();
    alive = false;
  }
  void clear() {
    for (auto& list : free) {
      for (void* p : list) std::free(p);
      list.clear();
    }
    stats.cached_bytes = 0;
  }
};

Cache& cache() {
  thread_local Cache c;
  return c;
}

}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes) {
  auto s = std::make_shared<Storage>();
  int c = size_class(nbytes);
  size_t bytes = size_t(1) << c;
  Cache& cc = cache();
  if (cc.alive && c < kClasses && !cc.free[c].empty()) {
    s->data = cc.free[c].back();
    cc.free[c].pop_back();
    cc.stats.cached_bytes -= bytes;
    ++cc.stats.hits;
  } else {
    s->data = std::aligned_alloc(kAlign, bytes);
    if (!s->data) throw std::bad_alloc();
    ++cc.stats.misses;
  }
  s->nbytes = nbytes;
  return s;
}

Storage::~Storage() {
  if (!data) return;
  int c = size_class(nbytes);
  size_t bytes = size_t(1) << c;
  Cache& cc = cache();
  if (cc.alive && c < kClasses && bytes <= kMaxCachedBuffer &&
      cc.stats.cached_bytes + bytes <= kMaxCached) {
    cc.free[c].push_back(data);
    cc.stats.cached_bytes += bytes;
  } else {
    std::free(data);
  }
}

BufferCacheStats buffer_cache_stats() { return cache().stats; }
void empty_buffer_cache() { cache().clear(); }

}  // namespace ag
