#include "autograd/storage.h"

#include <atomic>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "autograd/error.h"

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

namespace {

// ---- live-object counters ----
// Each thread counts into its own block (plain loads and stores of relaxed atomics: no locked
// instruction on the hot path); memory_stats() sums the blocks of live threads and what exited
// threads left behind. A block registers itself on its thread's first count.
struct alignas(64) ThreadCounters {
  std::atomic<int64_t> tensors{0}, nodes{0}, storages{0}, bytes{0};
  int state = 0;  // 0 unregistered, 1 registered, 2 thread exiting (counts go to the globals)
};
thread_local ThreadCounters t_counters [[gnu::tls_model("initial-exec")]];

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
    ThreadCounters& c = t_counters;
    r.tensors += c.tensors.load();
    r.nodes += c.nodes.load();
    r.storages += c.storages.load();
    r.bytes += c.bytes.load();
    c.tensors = c.nodes = c.storages = c.bytes = 0;
    std::erase(r.live, &c);
    c.state = 2;
  }
};

inline void bump(std::atomic<int64_t>& c, int64_t d) {
  c.store(c.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}

[[gnu::noinline]] ThreadCounters* register_thread() {
  ThreadCounters& c = t_counters;
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

inline ThreadCounters* counters() {
  ThreadCounters& c = t_counters;
  if (c.state == 1) [[likely]]
    return &c;
  return register_thread();
}

}  // namespace

namespace detail {
void count_tensors(int64_t d) {
  if (ThreadCounters* c = counters())
    bump(c->tensors, d);
  else
    registry().tensors += d;
}
void count_nodes(int64_t d) {
  if (ThreadCounters* c = counters())
    bump(c->nodes, d);
  else
    registry().nodes += d;
}
void count_storages(int64_t d, int64_t bytes) {
  if (ThreadCounters* c = counters()) {
    bump(c->storages, d);
    bump(c->bytes, bytes);
  } else {
    registry().storages += d;
    registry().bytes += bytes;
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
