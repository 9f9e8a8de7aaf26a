#include "nn/data/synthetic.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <vector>

namespace ag::nn {
namespace {

void check_args(const char* fn, int64_t n, double noise) {
  if (n < 0) fail<ValueError>("{}: negative sample count {}", fn, n);
  if (!(noise >= 0)) fail<ValueError>("{}: noise must be non-negative, got {}", fn, noise);
}

Tensor labels_tensor(const std::vector<int64_t>& labels) {
  return Tensor::from_vector(labels, {static_cast<int64_t>(labels.size())});
}

// Distance from point p to the segment a-b.
double segment_distance(double py, double px, double ay, double ax, double by, double bx) {
  double dy = by - ay, dx = bx - ax;
  double len2 = dy * dy + dx * dx;
  double t = len2 > 0 ? std::clamp(((py - ay) * dy + (px - ax) * dx) / len2, 0.0, 1.0) : 0.0;
  return std::hypot(py - (ay + t * dy), px - (ax + t * dx));
}

// A glyph: three strokes, each {y0, x0, y1, x1} in pixels.
using Glyph = std::array<std::array<double, 4>, 3>;

// One glyph per class, its stroke ends in the middle 60% of the image.
std::vector<Glyph> digit_prototypes(const DigitsOptions& o) {
  Generator gen(o.prototype_seed);
  std::vector<Glyph> glyphs(static_cast<size_t>(o.num_classes));
  for (Glyph& g : glyphs)
    for (auto& s : g)
      for (int j = 0; j < 4; ++j)
        s[j] = (0.2 + 0.6 * gen.uniform()) * static_cast<double>(j % 2 ? o.cols : o.rows);
  return glyphs;
}

// Renders strokes with a Gaussian profile of the given width into img [rows * cols].
void draw(const Glyph& g, double width, int64_t rows, int64_t cols, float* img) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      double d = 1e30;
      for (auto& s : g) d = std::min(d, segment_distance(r + 0.5, c + 0.5, s[0], s[1], s[2], s[3]));
      img[r * cols + c] = static_cast<float>(std::exp(-d * d / (2 * width * width)));
    }
}

}  // namespace

TensorDataset xor_dataset(int64_t n, double noise, uint64_t seed) {
  check_args("xor_dataset", n, noise);
  Generator gen(seed);
  int64_t count = n == 0 ? 4 : n;
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < count; ++i) {
    int64_t a = (i % 4) / 2, b = i % 2;
    for (int64_t v : {a, b})
      x.push_back(static_cast<float>(v + (n == 0 ? 0.0 : noise * gen.normal())));
    y.push_back(a ^ b);
  }
  return TensorDataset(Tensor::from_vector(x, {count, 2}), labels_tensor(y));
}

TensorDataset two_spirals(int64_t n_per_class, double noise, uint64_t seed, double turns) {
  check_args("two_spirals", n_per_class, noise);
  Generator gen(seed);
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n_per_class; ++i) {
    double r = 0.1 + 0.9 * static_cast<double>(i) /
                         static_cast<double>(std::max<int64_t>(n_per_class - 1, 1));
    double angle = r * turns * 2 * std::numbers::pi;
    for (int64_t c = 0; c < 2; ++c) {
      double sign = c == 0 ? 1.0 : -1.0;  // class 1: turned by pi
      x.push_back(static_cast<float>(sign * r * std::cos(angle) + noise * gen.normal()));
      x.push_back(static_cast<float>(sign * r * std::sin(angle) + noise * gen.normal()));
      y.push_back(c);
    }
  }
  return TensorDataset(Tensor::from_vector(x, {2 * n_per_class, 2}), labels_tensor(y));
}

Tensor circle_centers(int64_t count, double radius) {
  if (count <= 0) fail<ValueError>("circle_centers: count must be positive, got {}", count);
  std::vector<float> c;
  for (int64_t k = 0; k < count; ++k) {
    double a = 2 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(count);
    c.push_back(static_cast<float>(radius * std::cos(a)));
    c.push_back(static_cast<float>(radius * std::sin(a)));
  }
  return Tensor::from_vector(c, {count, 2});
}

TensorDataset gaussian_blobs(int64_t n, const Tensor& centers, double std, uint64_t seed) {
  check_args("gaussian_blobs", n, std);
  if (centers.dim() != 2 || centers.shape()[0] == 0 || !is_floating(centers.dtype()))
    fail<ShapeError>("gaussian_blobs: centers must be a float tensor [k, d] with k >= 1, got {} {}",
                     dtype_name(centers.dtype()), centers.shape());
  int64_t k = centers.shape()[0], d = centers.shape()[1];
  std::vector<double> c = centers.to_vector<double>();
  Generator gen(seed);
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    int64_t cls = i % k;
    for (int64_t j = 0; j < d; ++j)
      x.push_back(static_cast<float>(c[cls * d + j] + std * gen.normal()));
    y.push_back(cls);
  }
  return TensorDataset(Tensor::from_vector(x, {n, d}), labels_tensor(y));
}

TensorDataset sine_regression(int64_t n, double noise, uint64_t seed) {
  check_args("sine_regression", n, noise);
  Generator gen(seed);
  std::vector<float> x, y;
  for (int64_t i = 0; i < n; ++i) {
    double xi = -1 + 2 * gen.uniform();
    x.push_back(static_cast<float>(xi));
    y.push_back(static_cast<float>(std::sin(3 * xi) + noise * gen.normal()));
  }
  return TensorDataset(Tensor::from_vector(x, {n, 1}), Tensor::from_vector(y, {n, 1}));
}

TensorDataset synthetic_digits(int64_t n, uint64_t seed, const DigitsOptions& o) {
  check_args("synthetic_digits", n, o.noise);
  if (o.rows <= 0 || o.cols <= 0 || o.num_classes <= 0 || !(o.max_shift >= 0) || !(o.jitter >= 0))
    fail<ValueError>(
        "synthetic_digits: bad options: rows {}, cols {}, num_classes {}, max_shift {}, jitter {}",
        o.rows, o.cols, o.num_classes, o.max_shift, o.jitter);
  std::vector<Glyph> protos = digit_prototypes(o);
  double width = 1.2 * static_cast<double>(std::min(o.rows, o.cols)) / 28.0;
  Generator gen(seed);
  int64_t pixels = o.rows * o.cols;
  std::vector<float> x(static_cast<size_t>(n * pixels));
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    int64_t cls = i % o.num_classes;
    double dy = o.max_shift * (2 * gen.uniform() - 1), dx = o.max_shift * (2 * gen.uniform() - 1);
    Glyph g = protos[cls];
    for (auto& s : g)
      for (int j = 0; j < 4; ++j) s[j] += (j % 2 ? dx : dy) + o.jitter * gen.normal();
    float* img = x.data() + i * pixels;
    draw(g, width, o.rows, o.cols, img);
    double contrast = 0.7 + 0.3 * gen.uniform();
    for (int64_t p = 0; p < pixels; ++p)
      img[p] = static_cast<float>(std::clamp(contrast * img[p] + o.noise * gen.normal(), 0.0, 1.0));
    y.push_back(cls);
  }
  Shape shape = o.flatten ? Shape{n, pixels} : Shape{n, o.rows, o.cols};
  return TensorDataset(Tensor::from_vector(x, shape), labels_tensor(y));
}

}  // namespace ag::nn
