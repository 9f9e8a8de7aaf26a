#include "autograd/ops/random.h"

#include <bit>
#include <cmath>
#include <numeric>
#include <sstream>

#include "autograd/kernels/dispatch.h"
#include "autograd/node.h"
#include "autograd/ops/elementwise.h"

namespace ag {

double Generator::normal() {
  // Marsaglia's polar method: two normals per accepted pair.
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u, v, s;
  do {
    u = 2 * uniform() - 1;
    v = 2 * uniform() - 1;
    s = u * u + v * v;
  } while (s >= 1 || s == 0);
  double f = std::sqrt(-2 * std::log(s) / s);
  spare_ = v * f;
  has_spare_ = true;
  return u * f;
}

std::string Generator::state() const {
  std::ostringstream out;
  out << engine_ << ' ' << (has_spare_ ? 1 : 0) << ' ' << std::bit_cast<uint64_t>(spare_);
  return out.str();
}

void Generator::set_state(const std::string& text) {
  std::istringstream in(text);
  std::mt19937_64 engine;
  int spare_flag = -1;
  uint64_t spare_bits = 0;
  in >> engine >> spare_flag >> spare_bits;
  char extra;
  if (!in || (spare_flag != 0 && spare_flag != 1) || (in >> extra))
    fail<ValueError>("Generator::set_state: the text ({} characters) is not a generator state",
                     text.size());
  engine_ = engine;
  has_spare_ = spare_flag == 1;
  spare_ = std::bit_cast<double>(spare_bits);
}

Generator& default_generator() {
  static Generator g(0x5eed);
  return g;
}

void manual_seed(uint64_t seed) {
  Generator& g = default_generator();
  std::lock_guard<std::mutex> lock(g.mutex());
  g = Generator(seed);
}

namespace {

// Fills a fresh tensor element by element from `draw(gen)`, holding the generator's lock.
template <class Draw>
Tensor fill_random(const Shape& shape, Dtype dtype, Generator* gen, const char* op, Draw draw) {
  Tensor t = Tensor::empty(shape, dtype);
  Generator& g = gen ? *gen : default_generator();
  std::lock_guard<std::mutex> lock(g.mutex());
  kernels::dispatch_all(dtype, op, [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(draw(g));
  });
  return t;
}

}  // namespace

Generator& Generator::operator=(const Generator& other) {
  engine_ = other.engine_;
  has_spare_ = other.has_spare_;
  spare_ = other.spare_;
  return *this;
}

Tensor rand(const Shape& shape, Dtype dtype, Generator* gen) {
  return fill_random(shape, dtype, gen, "rand", [](Generator& g) { return g.uniform(); });
}

Tensor randn(const Shape& shape, Dtype dtype, Generator* gen) {
  return fill_random(shape, dtype, gen, "randn", [](Generator& g) { return g.normal(); });
}

Tensor uniform(const Shape& shape, double lo, double hi, Dtype dtype, Generator* gen) {
  if (!(lo <= hi)) fail<ValueError>("uniform: low {} is above high {}", lo, hi);
  return fill_random(shape, dtype, gen, "uniform",
                     [lo, hi](Generator& g) { return lo + (hi - lo) * g.uniform(); });
}

Tensor normal(const Shape& shape, double mean, double std, Dtype dtype, Generator* gen) {
  if (!(std >= 0)) fail<ValueError>("normal: std must be non-negative, got {}", std);
  return fill_random(shape, dtype, gen, "normal",
                     [mean, std](Generator& g) { return mean + std * g.normal(); });
}

Tensor randint(int64_t lo, int64_t hi, const Shape& shape, Generator* gen) {
  if (lo >= hi) fail<ValueError>("randint: empty range [{}, {})", lo, hi);
  uint64_t span = static_cast<uint64_t>(hi - lo);
  return fill_random(shape, int64, gen, "randint", [lo, span](Generator& g) {
    // rejection sampling: unbiased
    uint64_t limit = UINT64_MAX - UINT64_MAX % span, r;
    do r = g.next();
    while (r >= limit);
    return lo + static_cast<int64_t>(r % span);
  });
}

Tensor randperm(int64_t n, Generator* gen) {
  if (n < 0) fail<ValueError>("randperm: n must be non-negative, got {}", n);
  Tensor t = Tensor::empty(Shape{n}, int64);
  int64_t* p = t.data<int64_t>();
  std::iota(p, p + n, int64_t(0));
  Generator& g = gen ? *gen : default_generator();
  std::lock_guard<std::mutex> lock(g.mutex());
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    int64_t j = static_cast<int64_t>(g.next() % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return t;
}

Tensor bernoulli(const Tensor& p, Generator* gen) {
  Tensor probs = p.detach().to(float64).contiguous();
  const double* q = probs.data<double>();
  for (int64_t i = 0; i < probs.numel(); ++i)
    if (!(q[i] >= 0 && q[i] <= 1))
      fail<ValueError>("bernoulli: probability {} at flat index {} of shape {} is outside [0, 1]",
                       q[i], i, p.shape());
  Tensor out = Tensor::empty(p.shape(), is_floating(p.dtype()) ? p.dtype() : float32);
  Generator& g = gen ? *gen : default_generator();
  std::lock_guard<std::mutex> lock(g.mutex());
  kernels::dispatch_all(out.dtype(), "bernoulli", [&]<class T>() {
    T* o = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = g.uniform() < q[i] ? T(1) : T(0);
  });
  return out;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  if (!(p >= 0 && p <= 1))
    fail<ValueError>("dropout: probability {} is outside [0, 1] (input {})", p, x.shape());
  if (!is_floating(x.dtype()))
    fail<DtypeError>("dropout: expected a float32 or float64 input, got {} of shape {}",
                     dtype_name(x.dtype()), x.shape());
  if (!training || p == 0) return x;
  if (p == 1) return mul(x, 0.0);
  Tensor keep = fill_random(x.shape(), x.dtype(), gen, "dropout",
                            [p](Generator& g) { return g.uniform() >= p ? 1.0 / (1.0 - p) : 0.0; });
  return mul(x, keep);  // the mask is a constant: d/dx = mask
}

namespace {

// Copies row r of the probabilities (pr[0..n)) into the weights w, checking it: ValueError for a
// negative, NaN or infinite value, or too few positive entries for the draws asked.
void check_multinomial_row(const double* pr, int64_t n, int64_t r, int64_t num_samples,
                           bool replacement, const Shape& shape, std::vector<double>& w) {
  int64_t positive = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!(pr[i] >= 0) || std::isinf(pr[i]))
      fail<ValueError>(
          "multinomial: row {} of probabilities {} has an invalid value {} at index {}", r, shape,
          pr[i], i);
    w[i] = pr[i];
    positive += pr[i] > 0;
  }
  if (positive == 0 && num_samples > 0)
    fail<ValueError>("multinomial: row {} of probabilities {} has no positive entry", r, shape);
  if (!replacement && num_samples > positive)
    fail<ValueError>(
        "multinomial: {} samples without replacement, but row {} of probabilities {} has only {} "
        "non-zero entries",
        num_samples, r, shape, positive);
}

// One category drawn from the weights w[0..n) (at least one positive), by a uniform draw of g.
int64_t draw_category(const std::vector<double>& w, Generator& g) {
  // The total is summed afresh for each draw: subtracting the drawn weights instead would leave
  // rounding residue, and a zero-weight category could then be drawn.
  const int64_t n = static_cast<int64_t>(w.size());
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += w[i];
  double u = g.uniform() * total, acc = 0;
  int64_t last_positive = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (w[i] <= 0) continue;
    last_positive = i;
    acc += w[i];
    if (u < acc) return i;
  }
  return last_positive;  // u landed past the rounded sum
}

}  // namespace

Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement, Generator* gen) {
  if (probs.dim() != 1 && probs.dim() != 2)
    fail<ShapeError>("multinomial: expected probabilities of shape [n] or [batch, n], got {}",
                     probs.shape());
  Tensor p2 =
      probs.dim() == 1 ? probs.detach().reshape(Shape{1, probs.shape()[0]}) : probs.detach();
  Tensor q = p2.to(float64).contiguous();
  int64_t rows = q.shape()[0], n = q.shape()[1];
  if (!replacement && num_samples > n)
    fail<ValueError>("multinomial: {} samples without replacement from {} categories (shape {})",
                     num_samples, n, probs.shape());
  if (num_samples < 0)
    fail<ValueError>("multinomial: negative number of samples {} (probabilities {})", num_samples,
                     probs.shape());
  Tensor out = Tensor::empty(Shape{rows, num_samples}, int64);
  int64_t* o = out.data<int64_t>();
  Generator& g = gen ? *gen : default_generator();
  std::lock_guard<std::mutex> lock(g.mutex());
  std::vector<double> w(n);
  for (int64_t r = 0; r < rows; ++r) {
    check_multinomial_row(q.data<double>() + r * n, n, r, num_samples, replacement, probs.shape(),
                          w);
    for (int64_t s = 0; s < num_samples; ++s) {
      int64_t pick = draw_category(w, g);
      o[r * num_samples + s] = pick;
      if (!replacement) w[pick] = 0;
    }
  }
  if (probs.dim() == 1) return out.reshape(Shape{num_samples});
  return out;
}

}  // namespace ag
