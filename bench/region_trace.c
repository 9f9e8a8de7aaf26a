// An LD_PRELOAD shim that times every OpenMP parallel region of a process: the region as the
// calling thread sees it and each of the first two threads' share of it. bench/regions.sh builds
// it and reads its output; see there.
//
// libgomp starts a region with GOMP_parallel(fn, data, threads, flags); the shim wraps fn so each
// thread stamps its start and end. At exit the records go, one line per region, to
// $REGION_TRACE_OUT: index, region start and end, thread 0 start and end, thread 1 start and end
// (0 when it did not run), all in microseconds of CLOCK_MONOTONIC, then the region function as
// "object+offset".
#define _GNU_SOURCE
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { kMaxRegions = 1 << 20 };

typedef struct {
  double begin, end, thread_begin[2], thread_end[2];
  void (*fn)(void*);
} Region;

typedef struct {
  void (*fn)(void*);
  void* data;
  Region* region;
} Call;

typedef void (*ParallelFn)(void (*)(void*), void*, unsigned, unsigned);

static Region* regions;
static long count;

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void timed(void* p) {
  Call* call = p;
  const int t = omp_get_thread_num();
  const double b = now_us();
  call->fn(call->data);
  if (t < 2) {
    call->region->thread_begin[t] = b;
    call->region->thread_end[t] = now_us();
  }
}

void GOMP_parallel(void (*fn)(void*), void* data, unsigned threads, unsigned flags) {
  static ParallelFn next;
  if (!next) {
    next = (ParallelFn)dlsym(RTLD_NEXT, "GOMP_parallel");
    regions = calloc(kMaxRegions, sizeof(Region));
  }
  if (!regions || count >= kMaxRegions) {
    next(fn, data, threads, flags);
    return;
  }
  Region* r = &regions[count++];
  Call call = {fn, data, r};
  r->fn = fn;
  r->begin = now_us();
  next(timed, &call, threads, flags);
  r->end = now_us();
}

__attribute__((destructor)) static void write_regions(void) {
  const char* path = getenv("REGION_TRACE_OUT");
  if (!count || !path) return;
  FILE* f = fopen(path, "w");
  if (!f) return;
  for (long i = 0; i < count; ++i) {
    const Region* r = &regions[i];
    Dl_info info;
    const char* object = "?";
    unsigned long offset = 0;
    if (dladdr((void*)r->fn, &info) && info.dli_fname) {
      object = info.dli_fname;
      offset = (unsigned long)((char*)r->fn - (char*)info.dli_fbase);
    }
    fprintf(f, "%ld %.3f %.3f %.3f %.3f %.3f %.3f %s+0x%lx\n", i, r->begin, r->end,
            r->thread_begin[0], r->thread_end[0], r->thread_begin[1], r->thread_end[1], object,
            offset);
  }
  fclose(f);
}
