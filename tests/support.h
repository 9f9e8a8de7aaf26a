// Shared helpers for the test suite.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
// Tests reach below the model writer's include: the op-authoring layer and the xtensor interop.
#include "autograd/function.h"
#include "autograd/node.h"
#include "autograd/xtensor.h"

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

// ---- values ----

// Exact float64 tensors (Tensor({...}) would round the values through float32 first).
inline Tensor f64(std::vector<double> v) { return Tensor::from_vector(v); }
inline Tensor f64(std::vector<double> v, const ag::Shape& shape) {
  return Tensor::from_vector(v, shape);
}

// All elements, row-major, as double.
inline std::vector<double> values(const Tensor& t) {
  return t.detach().to(ag::float64).to_vector<double>();
}

// Checks every element against the expected values, to a relative tolerance.
inline void check_values(const Tensor& got, const std::vector<double>& expected,
                         double tol = 1e-12) {
  auto v = values(got);
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i);
    CHECK(v[i] == doctest::Approx(expected[i]).epsilon(tol));
  }
}

inline bool all_finite(const Tensor& t) {
  for (double v : values(t))
    if (!std::isfinite(v)) return false;
  return true;
}

// ---- files ----

// A fresh directory, removed with everything in it at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           fmt::format("ag_test_{}_{}", ::getpid(), counter++);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
  // Names of the files in the directory, sorted.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (auto& e : std::filesystem::directory_iterator(path))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace test
