// Internal to the library (not installed): the per-thread blocks of the live-object counters behind
// memory_stats() (storage.h). detail::count_tensors / count_nodes are defined in node.cpp and
// count_storages in storage.cpp, the files of the constructors and destructors that call them, so
// the compiler inlines them there.
//
// Each thread counts into its own cache line: a count is a plain load and store of a relaxed atomic
// in initial-exec thread-local storage (an %fs-relative access: no call, no locked instruction, no
// line shared with another thread). memory_stats() sums the blocks of the live threads and what
// exited threads left behind.
#pragma once

#include <atomic>
#include <cstdint>

namespace ag::detail {

struct alignas(64) ThreadCounters {
  std::atomic<int64_t> tensors{0}, nodes{0}, storages{0}, bytes{0};
  int state = 0;  // 0 unregistered, 1 registered, 2 thread exiting (counts go to the globals)
};

[[gnu::visibility("hidden")]] extern constinit thread_local ThreadCounters t_live_counters
    [[gnu::tls_model("initial-exec")]];

// The thread's first count: registers its block with memory_stats(). nullptr once the thread is
// exiting (its block is already folded into the globals).
[[gnu::visibility("hidden"), gnu::noinline]] ThreadCounters* register_live_counters();
// Counts of objects made or destroyed while their thread exits: straight into the globals.
[[gnu::visibility("hidden"), gnu::noinline]] void count_after_exit(int64_t tensors, int64_t nodes,
                                                                   int64_t storages, int64_t bytes);

inline ThreadCounters* live_counters() {
  ThreadCounters& c = t_live_counters;
  if (c.state == 1) [[likely]]
    return &c;
  return register_live_counters();
}

// Only this thread writes its block: load, add, store (no read-modify-write instruction needed).
inline void bump(std::atomic<int64_t>& c, int64_t d) {
  c.store(c.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}

}  // namespace ag::detail
