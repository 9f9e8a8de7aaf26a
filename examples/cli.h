// Command-line values for the example programs: an integer or a non-negative number, or the
// program's usage message (its `usage(problem)` never returns) naming the option and the value.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace examples {

template <class Usage>
int64_t parse_int(const std::string& option, const std::string& s, int64_t min, Usage usage) {
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < min)
    usage(fmt::format("{} expects an integer >= {}, got '{}'", option, min, s));
  return v;
}

template <class Usage>
double parse_nonnegative(const std::string& option, const std::string& s, Usage usage) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(v >= 0))
    usage(fmt::format("{} expects a number >= 0, got '{}'", option, s));
  return v;
}

}  // namespace examples
