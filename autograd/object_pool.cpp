#include "autograd/object_pool.h"

#include <cstdint>
#include <mutex>
#include <new>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define AG_POOL_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AG_POOL_OFF 1
#endif
#endif

namespace ag::detail {

#ifdef AG_POOL_OFF

void* pool_allocate(size_t bytes) { return ::operator new(bytes); }
void pool_free(void* p, size_t) noexcept { ::operator delete(p); }
size_t pool_chunk_bytes() { return 0; }

#else

namespace {

constexpr size_t kGrain = 16;                       // size classes: multiples of 16 bytes
constexpr size_t kLargest = 1024;                   // larger objects: plain new and delete
constexpr size_t kClasses = kLargest / kGrain + 1;  // class c holds blocks of c * kGrain bytes
constexpr size_t kChunk = size_t(64) << 10;         // carved into blocks, never freed
constexpr uint32_t kKeep = 4096;                    // free blocks a thread keeps per class

struct Block {
  Block* next;
};

// A list of free blocks with its tail, so that a whole list moves to or from the depot at once.
struct List {
  Block* head = nullptr;
  Block* tail = nullptr;
  uint32_t count = 0;
  void push(Block* b) {
    b->next = head;
    if (!head) tail = b;
    head = b;
    ++count;
  }
  Block* pop() {
    Block* b = head;
    head = b->next;
    --count;
    return b;
  }
  // Appends `other`'s blocks (O(1)) and empties it.
  void take(List& other) {
    if (!other.head) return;
    other.tail->next = head;
    if (!head) tail = other.tail;
    head = other.head;
    count += other.count;
    other = List{};
  }
};

struct ThreadPool {
  List free[kClasses];
  char* bump = nullptr;  // the rest of this thread's current chunk
  char* end = nullptr;
};

// Shared by all threads, under the mutex: every chunk ever carved (kept reachable, never freed:
// its blocks may be on any thread's list), and the depot of blocks that threads gave back.
struct Shared {
  std::mutex mutex;
  std::vector<void*> chunks;
  List depot[kClasses];
};
Shared& shared() {
  static Shared* s = new Shared;  // never destroyed: objects are freed during static teardown
  return *s;
}

// The calling thread's pool: made on its first allocation, handed to the depot when it exits.
constinit thread_local ThreadPool* t_pool [[gnu::tls_model("initial-exec")]] = nullptr;
constinit thread_local bool t_exited [[gnu::tls_model("initial-exec")]] = false;

struct Retire {
  ~Retire() {
    ThreadPool* p = t_pool;
    t_pool = nullptr;
    t_exited = true;
    if (!p) return;
    Shared& s = shared();
    {
      std::lock_guard lock(s.mutex);
      for (size_t c = 0; c < kClasses; ++c) s.depot[c].take(p->free[c]);
    }
    delete p;
  }
};

ThreadPool* register_pool() {
  if (t_exited) return nullptr;
  t_pool = new (std::nothrow) ThreadPool;  // if refused: plain blocks, through the depot
  if (!t_pool) return nullptr;
  thread_local Retire retire;
  (void)retire;
  return t_pool;
}

// A block of class c when the thread's own list is empty: the depot's blocks, else a new one from
// the thread's chunk (or from plain new while the thread exits; such a block joins the pool too).
[[gnu::noinline]] void* refill(ThreadPool* p, size_t c) {
  const size_t size = c * kGrain;
  Shared& s = shared();
  {
    std::lock_guard lock(s.mutex);
    if (s.depot[c].head) {
      if (!p) return s.depot[c].pop();
      p->free[c].take(s.depot[c]);
      return p->free[c].pop();
    }
  }
  if (!p) return ::operator new(size);
  if (p->end - p->bump < static_cast<std::ptrdiff_t>(size)) {
    char* chunk = static_cast<char*>(::operator new(kChunk, std::align_val_t(64)));
    {
      std::lock_guard lock(s.mutex);
      s.chunks.push_back(chunk);
    }
    p->bump = chunk;
    p->end = chunk + kChunk;
  }
  void* b = p->bump;
  p->bump += size;
  return b;
}

// Gives the thread's whole list of class c to the depot (when it grew past kKeep), or one block
// (while the thread exits).
[[gnu::noinline]] void give_back(ThreadPool* p, size_t c, Block* b) {
  Shared& s = shared();
  std::lock_guard lock(s.mutex);
  if (p) {
    s.depot[c].take(p->free[c]);
  } else {
    s.depot[c].push(b);
  }
}

// (0 bytes: class 1, so that every block can hold the list's link and blocks stay distinct)
size_t size_class(size_t bytes) { return bytes ? (bytes + kGrain - 1) / kGrain : 1; }

}  // namespace

void* pool_allocate(size_t bytes) {
  if (bytes > kLargest) return ::operator new(bytes);
  const size_t c = size_class(bytes);
  ThreadPool* p = t_pool;
  if (!p) [[unlikely]]
    p = register_pool();
  if (p && p->free[c].head) [[likely]]
    return p->free[c].pop();
  return refill(p, c);
}

void pool_free(void* q, size_t bytes) noexcept {
  if (!q) return;
  if (bytes > kLargest) return ::operator delete(q);
  const size_t c = size_class(bytes);
  Block* b = static_cast<Block*>(q);
  ThreadPool* p = t_pool;
  if (!p && !t_exited) [[unlikely]]
    p = register_pool();
  if (!p) [[unlikely]]
    return give_back(nullptr, c, b);
  p->free[c].push(b);
  if (p->free[c].count > kKeep) [[unlikely]]
    give_back(p, c, nullptr);
}

size_t pool_chunk_bytes() {
  Shared& s = shared();
  std::lock_guard lock(s.mutex);
  return s.chunks.size() * kChunk;
}

#endif

}  // namespace ag::detail
