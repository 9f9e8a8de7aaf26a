// The project's error hierarchy. Every failure a user can cause (bad shapes, bad dtypes, indices
// out of range, misuse of autograd) is reported by throwing one of these, with a message that names
// the op and the shapes involved, e.g. "matmul: [64, 784] @ [256, 10]: inner sizes 784 and 256
// differ".
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace ag {

// Base of every exception the engine throws on purpose.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Operand shapes do not fit the op (broadcasting, matmul inner sizes, reshape sizes...).
class ShapeError : public Error {
  using Error::Error;
};
// Operand dtypes do not fit the op (integer tensor where a float one is needed...).
class DtypeError : public Error {
  using Error::Error;
};
// An index, axis or class label outside its valid range.
class IndexError : public Error {
  using Error::Error;
};
// A bad argument value (negative probability, zero step, unknown option...).
class ValueError : public Error {
  using Error::Error;
};
// Misuse of automatic differentiation: backward through freed buffers, a tensor modified in place
// after being saved for backward, backward on a tensor that does not require grad...
class AutogradError : public Error {
  using Error::Error;
};
// Reading or writing files (checkpoints, datasets).
class IOError : public Error {
  using Error::Error;
};
// An allocation the system refused, or a tensor too large to address (sizes whose product or byte
// count overflows 64 bits). The message gives the requested shape and byte count; the process can
// continue (nothing was allocated).
class MemoryError : public Error {
  using Error::Error;
};
// Anomaly mode (engine.h, DetectAnomalyGuard) found a NaN or an infinity in a forward output or a
// backward gradient. The message names the op, its input shapes, the pass and where it was
// recorded.
class AnomalyError : public Error {
  using Error::Error;
};

// Throws E with a message built by fmt.
template <class E = Error, class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw E(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace ag
