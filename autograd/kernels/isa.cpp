#include "autograd/kernels/isa.h"

namespace ag::kernels {

// From the compiler's predefined macros, i.e. from the -march this file was compiled with (the
// whole library is compiled with the same flags).
const char* isa_level() {
#if defined(__x86_64__)
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512CD__) && \
    defined(__AVX512DQ__) && defined(__AVX512VL__) && defined(__AVX2__)
  return "x86-64-v4";
#elif defined(__AVX2__) && defined(__FMA__) && defined(__BMI2__) && defined(__F16C__)
  return "x86-64-v3";
#elif defined(__SSE4_2__) && defined(__POPCNT__)
  return "x86-64-v2";
#else
  return "x86-64";
#endif
#else
  return "other";
#endif
}

}  // namespace ag::kernels
