// Shared helpers for the test suite.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <string>

#include "autograd/autograd.h"

namespace test {

using ag::Tensor;
using ag::TensorList;

// Random float64 leaf requiring grad, values in [lo, hi).
inline Tensor leaf(const ag::Shape& shape, double lo = -1.0, double hi = 1.0, uint64_t seed = 1) {
  ag::Generator g(seed);
  return ag::uniform(shape, lo, hi, ag::float64, &g).requires_grad_();
}

// Runs gradcheck and gradgradcheck (float64, default tolerances) and fails the test case with the
// report if either disagrees.
template <class F>
void check_gradients(F fn, const TensorList& inputs, bool second_order = true) {
  std::function<Tensor(const TensorList&)> f = fn;
  auto r1 = ag::gradcheck(f, inputs);
  INFO(r1.to_string());
  CHECK(r1.ok);
  CHECK(r1.checked > 0);
  if (second_order) {
    auto r2 = ag::gradgradcheck(f, inputs);
    INFO(r2.to_string());
    CHECK(r2.ok);
    CHECK(r2.checked > 0);
  }
}

// Expects `expr` to throw E with a message containing every one of `parts`.
#define CHECK_THROWS_WITH_PARTS(expr, E, ...)                             \
  do {                                                                    \
    bool thrown_ = false;                                                 \
    try {                                                                 \
      (void)(expr);                                                       \
    } catch (const E& e_) {                                               \
      thrown_ = true;                                                     \
      std::string msg_ = e_.what();                                       \
      for (const char* part_ : {__VA_ARGS__}) {                           \
        INFO("message: " << msg_ << " | expected to contain: " << part_); \
        CHECK(msg_.find(part_) != std::string::npos);                     \
      }                                                                   \
    }                                                                     \
    CHECK_MESSAGE(thrown_, "expected " #E " from " #expr);                \
  } while (0)

inline bool allclose(const Tensor& a, const Tensor& b, double atol = 1e-6, double rtol = 1e-5) {
  if (!(a.shape() == b.shape())) return false;
  auto x = a.detach().to_vector<double>(), y = b.detach().to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i)
    if (!(std::abs(x[i] - y[i]) <= atol + rtol * std::abs(y[i]))) return false;
  return true;
}

}  // namespace test
