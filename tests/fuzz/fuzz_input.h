// Shared by the fuzz targets: the readers under test take a file path, so each input is written to
// one temporary file per process (removed at exit) and read back through the public function.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fuzz {

inline const std::string& input_path() {
  // Never freed: the exit handler registered here runs after the destructors of statics whose
  // initialisation completed later, which would include this one.
  static const std::string* path = [] {
    const char* dir = std::getenv("TMPDIR");
    auto* p = new std::string(std::string(dir && *dir ? dir : "/tmp") + "/tapegrad-fuzz-" +
                              std::to_string(::getpid()) + ".bin");
    std::atexit([] { std::remove(input_path().c_str()); });
    return p;
  }();
  return *path;
}

// Writes the bytes to the input file and returns its path; aborts if that fails (a broken
// environment, not a finding).
inline const std::string& write_input(const uint8_t* data, size_t size) {
  const std::string& path = input_path();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

}  // namespace fuzz
