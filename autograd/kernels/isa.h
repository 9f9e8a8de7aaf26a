// Internal: which instruction set this copy of libautograd was compiled for.
//
// A portable build (the default; docs/performance.md, "Portable build") installs libautograd once
// for plain x86-64 and once per level of the isa_variants option, in
// <libdir>/glibc-hwcaps/<level>/; the dynamic loader picks the best copy the CPU runs. isa_level()
// tells which one a process got.
#pragma once

namespace ag::kernels {

// The highest x86-64 micro-architecture level all of whose instructions the compiler was allowed
// to use for this library: "x86-64" (SSE2), "x86-64-v2" (SSE4.2, POPCNT), "x86-64-v3" (AVX2, FMA,
// BMI2) or "x86-64-v4" (AVX-512 F/BW/CD/DQ/VL); "other" on other architectures. A -Dnative=true
// build reports the level its build machine reaches.
const char* isa_level();

}  // namespace ag::kernels
