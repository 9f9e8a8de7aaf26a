// Random numbers from a seeded generator (reproducible: the same seed gives the same tensors on
// every run and machine). Each function takes a Generator; without one, the default generator
// (guarded by a mutex, seeded with manual_seed) is used.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>
#include <string>

#include "autograd/tensor.h"

namespace ag {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : engine_(seed) {}
  Generator(const Generator& other) { *this = other; }
  // Copies the state (not the lock): the copy continues the same sequence.
  Generator& operator=(const Generator& other);
  void seed(uint64_t s) {
    engine_.seed(s);
    has_spare_ = false;  // a cached second normal belongs to the old stream
  }
  uint64_t next() { return engine_(); }
  // uniform in [0, 1)
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double normal();
  std::mutex& mutex() { return mutex_; }
  // The whole state as text (the engine's words and the cached second normal), for checkpoints.
  // set_state() of that text makes this generator continue exactly where the saved one stood;
  // ValueError for text that state() did not produce.
  std::string state() const;
  void set_state(const std::string& text);

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0;
  std::mutex mutex_;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

// Uniform in [0, 1) / standard normal / uniform in [lo, hi) / integers in [lo, hi).
Tensor rand(const Shape& shape, Dtype dtype = float32, Generator* gen = nullptr);
Tensor randn(const Shape& shape, Dtype dtype = float32, Generator* gen = nullptr);
Tensor uniform(const Shape& shape, double lo, double hi, Dtype dtype = float32,
               Generator* gen = nullptr);
Tensor normal(const Shape& shape, double mean, double std, Dtype dtype = float32,
              Generator* gen = nullptr);
Tensor randint(int64_t lo, int64_t hi, const Shape& shape, Generator* gen = nullptr);
// A random permutation of 0..n-1 (int64).
Tensor randperm(int64_t n, Generator* gen = nullptr);
// Each element 1 with probability p, else 0 (x's dtype and shape are those of `p`).
Tensor bernoulli(const Tensor& p, Generator* gen = nullptr);
// Inverted dropout: in training, zeroes each element with probability p and scales the rest by
// 1/(1-p); identity when !training or p == 0.   d/dx = mask / (1 - p)
Tensor dropout(const Tensor& x, double p, bool training = true, Generator* gen = nullptr);
// Samples indices from the rows of probs ([n] or [batch, n], non-negative, not necessarily
// normalised): [num_samples] or [batch, num_samples] int64.
Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement = false,
                   Generator* gen = nullptr);

}  // namespace ag
