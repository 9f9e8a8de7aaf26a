#include "autograd/storage.h"
#include "autograd/node.h"

#include <atomic>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "autograd/error.h"
#include "autograd/live_counters.h"
#include "autograd/object_pool.h"

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

// ---- live-object counters (live_counters.h) ----

namespace detail {
constinit thread_local ThreadCounters t_live_counters [[gnu::tls_model("initial-exec")]];
}  // namespace detail

namespace {

using detail::ThreadCounters;

struct Registry {
  std::mutex mutex;
  std::vector<ThreadCounters*> live;
  std::atomic<int64_t> tensors{0}, nodes{0}, storages{0}, bytes{0};  // from exited threads
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: threads may exit after static teardown
  return *r;
}

// Folds the thread's block into the globals when the thread exits.
struct Retire {
  ~Retire() {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    ThreadCounters& c = detail::t_live_counters;
    r.tensors += c.tensors.load();
    r.nodes += c.nodes.load();
    r.storages += c.storages.load();
    r.bytes += c.bytes.load();
    c.tensors = c.nodes = c.storages = c.bytes = 0;
    std::erase(r.live, &c);
    c.state = 2;
  }
};

}  // namespace

namespace detail {
ThreadCounters* register_live_counters() {
  ThreadCounters& c = t_live_counters;
  if (c.state == 2) return nullptr;
  Registry& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    r.live.push_back(&c);
  }
  c.state = 1;
  thread_local Retire retire;
  (void)retire;
  return &c;
}
void count_after_exit(int64_t tensors, int64_t nodes, int64_t storages, int64_t bytes) {
  Registry& r = registry();
  r.tensors += tensors;
  r.nodes += nodes;
  r.storages += storages;
  r.bytes += bytes;
}
// Here, before Storage's allocate and release, so that it is inlined into them.
void count_storages(int64_t d, int64_t bytes) {
  if (ThreadCounters* c = live_counters()) [[likely]] {
    bump(c->storages, d);
    bump(c->bytes, bytes);
  } else {
    count_after_exit(0, 0, d, bytes);
  }
}
}  // namespace detail

MemoryStats memory_stats() {
  MemoryStats m;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  m.live_tensors = r.tensors.load();
  m.live_nodes = r.nodes.load();
  m.live_storages = r.storages.load();
  m.live_storage_bytes = r.bytes.load();
  for (ThreadCounters* c : r.live) {
    m.live_tensors += c->tensors.load(std::memory_order_relaxed);
    m.live_nodes += c->nodes.load(std::memory_order_relaxed);
    m.live_storages += c->storages.load(std::memory_order_relaxed);
    m.live_storage_bytes += c->bytes.load(std::memory_order_relaxed);
  }
  m.cached_bytes = buffer_cache_stats().cached_bytes;
  m.object_pool_bytes = detail::pool_chunk_bytes();
  return m;
}

namespace {
// Largest buffer we try to allocate: beyond it the size class (a power of two) would not fit in
// size_t, and no machine has that much memory anyway.
constexpr size_t kMaxAllocation = size_t(1) << 62;
}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes) {
  if (nbytes > kMaxAllocation)
    fail<MemoryError>("cannot allocate {} bytes: more than the {} bytes a buffer may have", nbytes,
                      kMaxAllocation);
  auto s = detail::make_pooled<Storage>();
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
    if (!s->data && cc.stats.cached_bytes > 0) {
      // The cache may hold what the system needs: give it back and try once more.
      cc.clear();
      s->data = std::aligned_alloc(kAlign, bytes);
    }
    if (!s->data)
      fail<MemoryError>("out of memory: the system refused a buffer of {} bytes ({:.1f} GiB)",
                        bytes, static_cast<double>(bytes) / double(1 << 30));
    ++cc.stats.misses;
  }
  s->nbytes = nbytes;
  detail::count_storages(1, static_cast<int64_t>(nbytes));
  return s;
}

Storage::~Storage() {
  if (!data) return;
  detail::count_storages(-1, -static_cast<int64_t>(nbytes));
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
